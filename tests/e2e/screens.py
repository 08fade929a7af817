"""What a user does on the console's generated screens, in Playwright steps."""
import re


def action_button(page, view: str, name: str):
    """The button of a screen action on a record's page (FAB names it after the view's
    endpoint and the action, whatever the language)."""
    return page.locator(f'[id="btn-action-{view}.action-{name}"]')


def field(page, label: str):
    """The value cell next to `label` on a record's page."""
    return page.locator("table tr").filter(
        has=page.locator("th", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))
    ).locator("td")


def open_record(page, list_url: str, text: str):
    """From a list screen, open the record whose row shows `text`."""
    page.goto(list_url)
    row(page, text).locator("a[href*='/show/']").first.click()
    page.wait_for_url(re.compile(r"/show/\d+"))


def choose(page, field_id: str, option: str):
    """Pick `option` in a Select2 dropdown of a form."""
    page.locator(f"#select2-{field_id}-container").click()
    page.locator(".select2-results__option", has_text=option).first.click()



def row(page, text: str):
    """The row of a list screen that shows `text`."""
    return page.locator("table tr", has_text=text)
