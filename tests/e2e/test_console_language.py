"""The console's language menu: Chinese (the default) to English and back, labels following."""
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def test_the_language_menu_switches_the_console_between_chinese_and_english(console, shops):
    staff = console("Operations", locale=None)
    staff.goto("/shopview/list/")
    navbar = staff.locator(".navbar")
    expect(navbar).to_contain_text("店铺")
    expect(staff.locator("table.table-bordered")).to_contain_text("佣金比例")

    menu = navbar.locator("li.dropdown", has=staff.locator("i.flag")).first
    menu.locator("a.dropdown-toggle").click()
    menu.get_by_role("link", name="English").click()
    expect(navbar).to_contain_text("Shops")
    expect(navbar).not_to_contain_text("店铺")
    expect(staff.locator("table.table-bordered")).to_contain_text("Commission rate")
    expect(staff.locator("table.table-bordered")).to_contain_text("Shop A")

    menu.locator("a.dropdown-toggle").click()
    menu.get_by_role("link", name="简体中文").click()
    expect(navbar).to_contain_text("店铺")
    expect(navbar).not_to_contain_text("Shops")
    expect(staff.locator("table.table-bordered")).to_contain_text("佣金比例")
