"""All models, imported so that one MetaData knows every table (migrations, create_all)."""
from models import (audit, events, inventory, member, order, product, security,  # noqa: F401
                    shop, storage)
