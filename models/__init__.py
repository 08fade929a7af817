"""All models, imported so that one MetaData knows every table (migrations, create_all)."""
from models import (after_sale, audit, card, events, export, finance,  # noqa: F401
                    inventory, invoice, logistics, marketing, member, message, order, payment,
                    prices, product, purchasing, review, risk, security, shop, storage,
                    storefront, ticket, webhook, wms)
