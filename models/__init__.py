"""All models, imported so that one MetaData knows every table (migrations, create_all)."""
from models import audit, events, inventory, product, security, shop, storage  # noqa: F401
