"""The home dashboard: every center's panels the viewer may see, drawn with the local Chart.js."""
from flask import g
from flask_appbuilder import IndexView, expose

from services import dashboard


class DashboardIndexView(IndexView):
    index_template = "houtai/dashboard.html"

    @expose("/")
    def index(self):
        user = getattr(g, "user", None)
        if user is None or not user.is_authenticated:
            return self.render_template("houtai/welcome.html", appbuilder=self.appbuilder)
        visible = [p for p in dashboard.panels()
                   if self.appbuilder.sm.has_access(*p.permission)]
        figures = [{"key": p.key, "title": str(p.title), "chart": p.chart, **p.data()}
                   for p in visible]
        shop = getattr(user, "shop", None)
        return self.render_template(self.index_template, appbuilder=self.appbuilder,
                                    panels=figures, shop=shop)
