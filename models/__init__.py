"""All models, imported so that one MetaData knows every table (migrations, create_all)."""
from models import (audit, events, inventory, member, product, security, shop,  # noqa: F401
                    storage)
