"""All models, imported so that one MetaData knows every table (migrations, create_all)."""
from models import (after_sale, audit, card, events, finance, inventory, invoice,  # noqa: F401
                    logistics, marketing, member, order, payment, product, purchasing, review,
                    risk, security, shop, storage, ticket, wms)
