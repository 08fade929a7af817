"""Extensions created unbound and bound to an application in `create_app()`."""
from flask_appbuilder import Model
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

# One MetaData for FAB's ab_* tables and ours, so foreign keys to ab_user work.
db = SQLAlchemy(model_class=Model)
migrate = Migrate()
csrf = CSRFProtect()
