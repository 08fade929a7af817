"""Business rules, one module per center. Importing the package registers every center's
event subscribers, scheduled tasks and dashboard panels."""
from services import dashboard, order, scheduler  # noqa: F401
