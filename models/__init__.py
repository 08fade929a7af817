"""All models, imported so that one MetaData knows every table (migrations, create_all)."""
from models import (after_sale, audit, events, inventory, member, order,  # noqa: F401
                    payment, product, security, shop, storage)
