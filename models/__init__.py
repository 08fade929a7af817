"""All models, imported so that one MetaData knows every table (migrations, create_all)."""
from models import (after_sale, audit, card, events, finance, integration,  # noqa: F401
                    inventory, invoice, logistics, marketing, member, operations, order,
                    payment, product, purchasing, review, risk, security, shop, storage, ticket,
                    wms)
