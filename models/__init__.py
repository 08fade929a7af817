"""All models, imported so that one MetaData knows every table (migrations, create_all)."""
from models import (after_sale, audit, card, events, finance, inventory, invoice,  # noqa: F401
                    marketing, member, order, payment, product, review, risk, security, shop,
                    storage, ticket)
