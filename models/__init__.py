"""All models, imported so that one MetaData knows every table (migrations, create_all)."""
from models import (after_sale, audit, events, finance, inventory, member,  # noqa: F401
                    order, payment, product, security, shop, storage)
