"""Chinese and English interfaces: the zh catalogue is complete, every marked string (ours, and
Flask-AppBuilder's) has a Chinese translation, and the console's language switcher works.

The compiled catalogue (messages.mo, git-ignored, built by `make translations`) is compiled
here when it is missing or older than messages.po, so `pytest` alone is enough."""
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "app" / "translations"
POT = TRANSLATIONS / "messages.pot"
PO = TRANSLATIONS / "zh" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
# The keywords of `pybabel extract -k lazy_gettext -k _l -k gettext -k _` (added to babel's).
KEYWORDS = {**DEFAULT_KEYWORDS, "lazy_gettext": None, "_l": None, "gettext": None, "_": None}


def read_catalog(path: Path):
    with path.open("rb") as f:
        return read_po(f, locale="zh" if path.suffix == ".po" else None)


def ensure_compiled() -> None:
    """Compile messages.po to messages.mo (atomically) unless an up-to-date .mo is there."""
    if MO.exists() and MO.stat().st_mtime >= PO.stat().st_mtime:
        return
    catalog = read_catalog(PO)
    fd, tmp = tempfile.mkstemp(dir=MO.parent, suffix=".mo.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write_mo(f, catalog)
        os.replace(tmp, MO)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@pytest.fixture(scope="module", autouse=True)
def compiled_catalogue(app):
    """The .mo exists, and the application has not kept translations loaded without it."""
    ensure_compiled()
    # Flask-Babel caches the merged catalogues per locale for the app's lifetime.
    app.extensions["babel"].instance.domain_instance.cache.clear()


def _translated(message) -> bool:
    strings = message.string if isinstance(message.string, (tuple, list)) else [message.string]
    return bool(strings) and all(strings)


def _ids(message) -> str:
    return message.id if isinstance(message.id, str) else message.id[0]


def extract(directory: Path, method_map, options_map) -> set[str]:
    found = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
            str(directory), method_map, options_map, keywords=KEYWORDS):
        found.add(message if isinstance(message, str) else message[0])
    return found


def extract_ours() -> set[str]:
    """Every string marked in app/, views/, services/, models/ and the templates, read with
    babel.cfg exactly as `pybabel extract -F babel.cfg ... .` does."""
    with (ROOT / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f, str(ROOT / "babel.cfg"))
    return extract(ROOT, method_map, options_map)


# -- the catalogue ------------------------------------------------------------------------------

def test_zh_catalogue_has_no_untranslated_or_fuzzy_entries():
    catalog = read_catalog(PO)
    assert not catalog.fuzzy, "the zh catalogue's header is marked fuzzy"
    messages = [m for m in catalog if m.id]
    assert len(messages) > 30
    untranslated = [_ids(m) for m in messages if not _translated(m)]
    fuzzy = [_ids(m) for m in messages if m.fuzzy]
    assert not untranslated, f"msgids without a zh msgstr: {untranslated}"
    assert not fuzzy, f"fuzzy zh entries: {fuzzy}"
    problems = [(_ids(m), [str(e) for e in errors]) for m, errors in catalog.check()]
    assert not problems, f"entries whose translation does not fit the msgid: {problems}"


def test_translations_are_chinese():
    """A msgstr copied from the msgid (or left in English) is not a translation."""
    catalog = read_catalog(PO)
    latin_only = [m.id for m in catalog if m.id and not re.search(r"[\u4e00-\u9fff]", m.string)]
    assert not latin_only, f"zh msgstr without Chinese characters: {latin_only}"


def test_compile_gives_no_warnings(tmp_path):
    """What `make translations` runs, on a copy: every message compiled, nothing skipped."""
    result = subprocess.run(
        [sys.executable, "-c", "from babel.messages.frontend import main; main()",
         "compile", "-f", "--statistics", "-i", str(PO), "-o", str(tmp_path / "messages.mo"),
         "-l", "zh"],
        capture_output=True, text=True, cwd=ROOT, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "(100%) translated" in output, output
    words = output.replace(str(PO), "").replace(str(tmp_path), "").lower()
    for word in ("fuzzy", "error", "warning", "skipping"):
        assert word not in words, output


def test_every_marked_string_has_a_zh_translation():
    extracted = extract_ours()
    # babel.cfg's patterns are relative to the project root: a wrong pattern finds nothing.
    assert {"Shops", "Audit log", "Dashboard", "Commission rate"} <= extracted
    catalog = read_catalog(PO)
    translated = {_ids(m) for m in catalog if m.id and _translated(m) and not m.fuzzy}
    missing = sorted(extracted - translated)
    assert not missing, (
        "strings marked for translation without a zh translation (run pybabel extract/update, "
        f"see babel.cfg, and translate them in {PO.relative_to(ROOT)}): {missing}")


def test_template_pot_is_current():
    """messages.pot holds every marked string (it is what `pybabel update` merges from)."""
    pot = {_ids(m) for m in read_catalog(POT) if m.id}
    missing = sorted(extract_ours() - pot)
    assert not missing, f"re-run pybabel extract (see babel.cfg); not in messages.pot: {missing}"


def test_flask_appbuilder_strings_are_chinese_too():
    """FAB's zh catalogue lacks some of its own strings ("Delete", "Edit", ...); Flask-Babel
    merges FAB's catalogue with ours, so ours must fill every gap."""
    import flask_appbuilder

    fab = Path(flask_appbuilder.__file__).resolve().parent
    fab_strings = extract(
        fab, [("**.py", "python"), ("**/templates/**.html", "jinja2")],
        {"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}})
    assert {"Delete", "Edit", "Search"} <= fab_strings
    # The same merge as flask_babel.Domain.get_translations: FAB's folder, then ours.
    merged = Translations.load(str(fab / "translations"), ["zh"])
    merged.merge(Translations.load(str(TRANSLATIONS), ["zh"]))
    untranslated = sorted(s for s in fab_strings if not merged._catalog.get(s))
    assert not untranslated, (
        f"Flask-AppBuilder strings with no zh translation in its catalogue or ours "
        f"(add them to app/translations/extra_messages.py and translate): {untranslated}")


# -- the console ----------------------------------------------------------------------------------

def _page(browser_client, url) -> str:
    response = browser_client.get(url)
    assert response.status_code == 200, url
    return response.get_data(as_text=True)


def _switch(browser_client, locale) -> None:
    response = browser_client.get(f"/lang/{locale}")
    assert response.status_code == 302


def test_language_switcher_and_chinese_screens(app, browser, shops):
    """One console login (the login form is rate limited): the configured default language,
    then /lang/en and /lang/zh on the shop list, then Chinese show, edit and dashboard pages."""
    admin = browser("Admin")

    page = _page(admin, "/shopview/list/")
    if app.config["BABEL_DEFAULT_LOCALE"] == "zh":
        assert "店铺" in page and "Shops" not in page
    else:
        assert "Shops" in page

    _switch(admin, "en")
    page = _page(admin, "/shopview/list/")
    assert "Shops" in page
    assert "Commission rate" in page
    assert "Shop A" in page
    assert re.search(r">\s*Delete\s*<", page) and re.search(r">\s*Edit\s*<", page)
    assert "店铺" not in page and "佣金比例" not in page

    _switch(admin, "zh")
    page = _page(admin, "/shopview/list/")
    assert "店铺" in page
    assert "佣金比例" in page
    assert "Shop A" in page
    assert "Shops" not in page and "Commission rate" not in page
    # Flask-AppBuilder's own row buttons (missing from its zh catalogue, filled by ours).
    assert re.search(r">\s*删除\s*<", page) and re.search(r">\s*编辑\s*<", page)
    assert not re.search(r">\s*(Delete|Edit|Show)\s*<", page)
    assert "搜索" in page  # FAB's own catalogue still applies alongside ours

    shop_id = shops["A"].id
    show = _page(admin, f"/shopview/show/{shop_id}")
    assert "结算账户" in show and "联系电话" in show and "Settlement account" not in show
    edit = _page(admin, f"/shopview/edit/{shop_id}")
    assert "编辑店铺" in edit and "Edit shop" not in edit
    dashboard = _page(admin, "/")
    assert "仪表盘" in dashboard and "审计日志" in dashboard and "事件投递" in dashboard
    assert "Dashboard" not in dashboard

    assert admin.get("/lang/xx").status_code == 404
    _switch(admin, "en")
    assert "Shops" in _page(admin, "/shopview/list/")
