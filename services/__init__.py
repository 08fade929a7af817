"""Business rules, one module per center. Importing the package registers every center's
event subscribers, scheduled tasks and dashboard panels."""
from services import dashboard, order, scheduler  # noqa: F401
from services import message, webhook  # noqa: F401  (integrations' subscribers and ticks)
