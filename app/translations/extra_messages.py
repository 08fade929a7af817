"""Messages the catalogue must hold that no `_()` call in our code names (never imported).

`pybabel extract` (see babel.cfg) reads this file like any other under app/, so the entries
below stay in app/translations/messages.pot and survive `pybabel update`; tests/test_i18n.py
then requires a Chinese translation for each of them like for every other marked string.

Flask-Babel merges catalogues at run time: Flask-AppBuilder's own translations folder first,
then ours (BABEL_TRANSLATION_DIRECTORIES = "<fab>/translations;translations", the second one
resolved against the app package, i.e. app/translations). An entry here therefore fills a gap
in FAB's zh catalogue, or replaces one of its translations, for FAB's screens too.
"""


def _(message: str) -> str:
    """Marker for extraction only."""
    return message


# Flask-AppBuilder 5.3 strings its zh catalogue lacks (or only has as fuzzy, which its .mo
# leaves out), so they would stay English on Chinese pages.
FAB_MISSING = (
    # templates/appbuilder/general/lib.html: row buttons and the delete confirmation
    _("Add"),
    _("Edit"),
    _("Show"),
    _("Delete"),
    _("Are you sure you want to delete this item?"),
    # baseviews.py, fields.py, validators.py
    _("Database Error"),
    _("Not a valid choice"),
    _("Must have at least two capital letters, one special character, two digits, three lower "
      "case letters and a minimal length of 10."),
    # models/generic/filters.py, models/sqla/filters.py: search filters on list pages
    _("Contains (insensitive)"),
    _("Start with"),
    _("In"),
    _("Not In"),
    # security/forms.py, security/manager.py, security/views.py
    _("Either select a role or a group"),
    _("List Groups"),
    _("Groups"),
    _("Show Group"),
    _("Add Group"),
    _("Edit Group"),
    _("Edit User Information"),
    _("User information changed"),
    _("The user's password for authentication"),
    _("It's not a good policy to remove a user, just make it inactive"),
    _("User(s) exists in the role, cannot delete"),
    _("User(s) exists in the group, cannot delete"),
    # templates/appbuilder/general/security/login_oauth.html, login_saml.html
    _("Sign In with "),
)

# Flask-AppBuilder strings whose zh translation is wrong or unidiomatic on our screens.
FAB_CORRECTED = (
    # FAB: "数据完整性错误，可能缺少必填字段数据" (speaks of missing fields; it is a duplicate)
    _("Integrity error, probably unique constraint"),
    # FAB: "以开始" / "不以开始" / "以结束" / "不以结束" (no object: not Chinese)
    _("Starts with"),
    _("Not Starts with"),
    _("Ends with"),
    _("Not Ends with"),
)

# Our own strings translated at run time through a variable (lazy_gettext(NAME)), which
# extraction cannot see: views/base.py SHOP_MISMATCH.
INDIRECT = (
    _("Must be your own shop."),
)
