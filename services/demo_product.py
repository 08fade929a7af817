"""Product demo data (part of `houtai demo`): a 3-level category tree, 10 brands, attributes
of every kind and 20 SPUs per demo shop in every status, all made through the services."""
import itertools
from datetime import timedelta
from decimal import Decimal

from app.extensions import db
from models.product import Attribute, AttributeKind, Brand, Category, InputType, Spu
from models.shop import Shop
from services import order, product
from services.actor import Actor, acting_as

TREE = {
    "服装": {"上衣": ["T恤", "衬衫"], "下装": ["牛仔裤"]},
    "数码": {"手机": ["智能手机"], "电脑": ["笔记本"]},
}
BRANDS = ["优衣库", "李宁", "安踏", "波司登", "海澜之家", "华为", "小米", "联想", "OPPO", "荣耀"]
ATTRIBUTES = [
    # (category, name, kind, input type, options, required)
    ("服装", "材质", AttributeKind.non_key, InputType.single_select, ["棉", "麻", "涤纶"], False),
    ("服装", "颜色", AttributeKind.sales, InputType.single_select, ["白", "黑", "蓝"], True),
    ("服装", "尺码", AttributeKind.sales, InputType.single_select, ["S", "M", "L", "XL"], True),
    ("服装", "款号", AttributeKind.key, InputType.text, [], True),
    ("数码", "型号", AttributeKind.key, InputType.text, [], True),
    ("数码", "屏幕尺寸", AttributeKind.non_key, InputType.number, [], False),
    ("数码", "颜色", AttributeKind.sales, InputType.single_select, ["银", "黑"], True),
    ("数码", "存储", AttributeKind.sales, InputType.single_select, ["128G", "256G", "512G"], True),
]
# 20 SPUs per shop: how many end in each status
STATUS_PLAN = ["draft"] * 4 + ["pending_review"] * 4 + ["on_sale"] * 6 + ["off_sale"] * 3 + \
    ["rejected"] * 3
SPUS_PER_SHOP = len(STATUS_PLAN)


def _category(name: str, parent: Category | None, sort_order: int) -> Category:
    category = Category(name=name, parent_id=parent.id if parent else None, sort_order=sort_order)
    db.session.add(category)
    product.place_category(category)
    return category


def load_catalog() -> None:
    """The tree, brands and attributes, once."""
    if Category.query.filter_by(name="服装", parent_id=None).first() is not None:
        return
    roots = {}
    for position, (root_name, children) in enumerate(TREE.items()):
        root = roots[root_name] = _category(root_name, None, position)
        for child_order, (child_name, leaves) in enumerate(children.items()):
            child = _category(child_name, root, child_order)
            for leaf_order, leaf in enumerate(leaves):
                _category(leaf, child, leaf_order)
    for name in BRANDS:
        db.session.add(Brand(name=name, enabled=True))
    for sort, (root, name, kind, input_type, options, required) in enumerate(ATTRIBUTES):
        db.session.add(Attribute(category_id=roots[root].id, name=name, kind=kind,
                                 input_type=input_type, options=options, required=required,
                                 sort_order=sort))
    db.session.commit()


def _leaves() -> list[Category]:
    return [c for c in Category.query.order_by(Category.path) if product.is_leaf(c)]


def _spu_values(leaf: Category, n: int) -> tuple[dict, dict]:
    """Attribute values and a small grid choice for the n-th demo SPU of a leaf."""
    values, choices = {}, {}
    for attribute in product.attributes_of(leaf):
        if attribute.kind == AttributeKind.key:
            values[str(attribute.id)] = f"{attribute.name}-{n:03d}"
        elif attribute.input_type == InputType.number:
            values[str(attribute.id)] = "6.1"
        elif attribute.kind == AttributeKind.non_key:
            values[str(attribute.id)] = attribute.options[n % len(attribute.options)]
        else:
            choices[str(attribute.id)] = attribute.options[:2]
    return values, choices


def load_shop_products(shop: Shop) -> int:
    """20 SPUs in every status for one shop (only what is missing); returns how many it made."""
    existing = Spu.query.filter_by(shop_id=shop.id).count()
    leaves, brands = _leaves(), Brand.query.order_by(Brand.id).all()
    merchant = Actor(name=f"merchant_{shop.code.lower()}", shop_id=shop.id, authenticated=True,
                     merchant=True)
    staff = Actor(name="product_ops", authenticated=True)
    made = 0
    for n, status in itertools.islice(enumerate(STATUS_PLAN), existing, None):
        leaf = leaves[n % len(leaves)]
        brand = brands[(n + shop.id) % len(brands)]
        values, choices = _spu_values(leaf, n)
        with acting_as(merchant):
            spu = Spu(shop_id=shop.id, title=f"{shop.name} · {leaf.name} {n + 1:02d}",
                      category_id=leaf.id, brand_id=brand.id, attribute_values=values,
                      outer_id=f"{shop.code}-SPU-{n + 1:03d}")
            product.prepare_spu(spu, creating=True)
            db.session.add(spu)
            db.session.flush()
            product.record_creation(spu)
            product.generate_skus(spu.id, choices, Decimal(59 + 10 * (n % 5)) + Decimal("0.90"))
            if status != "draft":
                product.submit_spu(spu.id)
        if status in ("on_sale", "off_sale"):
            with acting_as(staff):
                product.approve_spu(spu.id)
        if status == "rejected":
            with acting_as(staff):
                product.reject_spu(spu.id, "主图不清晰，请重新上传")
        if status == "off_sale":
            with acting_as(merchant):
                product.take_off_sale(spu.id, "换季")
        db.session.commit()
        made += 1
    return made


DEMO_WAREHOUSES = [("WH-SH", "上海中心仓", "310000"), ("WH-GZ", "广州中心仓", "440000")]


def load_stock() -> int:
    """Two platform warehouses and stock for every enabled demo SKU (only where none is)."""
    from models.inventory import Stock, Warehouse
    from models.product import Sku
    from services import inventory

    warehouses = []
    for code, name, region in DEMO_WAREHOUSES:
        warehouse = Warehouse.query.filter_by(code=code, shop_id=None).one_or_none()
        if warehouse is None:
            warehouse = Warehouse(code=code, name=name, region=region)
            db.session.add(warehouse)
            db.session.commit()
        warehouses.append(warehouse)
    stocked = {sku_id for (sku_id,) in db.session.query(Stock.sku_id).distinct()}
    made = 0
    with acting_as(Actor.system("demo")):
        for n, sku in enumerate(Sku.query.order_by(Sku.id)):
            if sku.id in stocked:
                continue
            inventory.adjust(sku.id, warehouses[n % 2].id, 20 + (n * 7) % 50, "demo first stock")
            if n % 3 == 0:
                inventory.adjust(sku.id, warehouses[(n + 1) % 2].id, 5 + n % 10, "demo first stock")
            made += 1
        db.session.commit()
    return made


DEMO_MEMBERS = [("buyer_li", "李雷", "13800001111", "310000", "310100", "310104", "漕溪北路 88 号"),
                ("buyer_han", "韩梅梅", "13900002222", "440000", "440100", "440106", "天河路 385 号"),
                ("buyer_wang", "王小明", "13700003333", "110000", "110100", "110105", "建国路 93 号")]


def mark_selling_kinds() -> None:
    """One on-sale SPU of each demo shop sold ahead (pre-sale, ships in 20 days, deposit
    10.00 a unit), one sold as a service (a redeemable code), one drop-shipped."""
    from models.product import Fulfilment, GoodsKind, Spu, SpuStatus
    from services.clock import business_date

    for shop in Shop.query.filter(Shop.code.in_(["A", "B"])).order_by(Shop.id):
        on_sale = Spu.query.filter_by(shop_id=shop.id, status=SpuStatus.on_sale) \
            .order_by(Spu.id).all()
        if len(on_sale) < 4 or any(s.presale_ships_on for s in on_sale):
            continue
        on_sale[-1].presale_ships_on = business_date() + timedelta(days=20)
        on_sale[-1].presale_deposit = Decimal("10.00")
        on_sale[-2].goods_kind = GoodsKind.service
        on_sale[-3].fulfilment = Fulfilment.dropship
    db.session.commit()


# (what happens after placing, lines as (on-sale SKU index, quantity)) of each demo trade
DEMO_TRADES = [
    ("unpaid", [(0, 1), (5, 2)]),
    ("cancelled", [(1, 1)]),
    ("fulfilling", [(2, 1), (3, 1)]),
    ("picking", [(0, 1)]),
    ("shipped", [(1, 2)]),
    ("delivered", [(2, 1)]),
    ("completed", [(3, 1)]),
    ("pre_sale_paid", [("pre_sale", 1)]),
    ("virtual", [("service", 2)]),
    ("dropship", [("dropship", 1)]),
]


def load_members_and_trades() -> int:
    """Members with addresses, and trades in every status the order flow reaches without
    after-sales (once)."""
    from models.member import Member, MemberAddress
    from models.order import Trade

    for account, name, phone, province, city, district, detail in DEMO_MEMBERS:
        if Member.query.filter_by(account=account).first() is None:
            member = Member(account=account, name=name, phone=phone)
            db.session.add(member)
            db.session.flush()
            db.session.add(MemberAddress(member_id=member.id, recipient=name, phone=phone,
                                         province_code=province, city_code=city,
                                         district_code=district, detail=detail,
                                         is_default=True))
    db.session.commit()
    if Trade.query.count():
        return 0
    mark_selling_kinds()
    members = Member.query.order_by(Member.id).all()
    skus = _demo_skus()
    for n, (story, lines) in enumerate(DEMO_TRADES):
        member = members[n % len(members)]
        body = {"member_id": member.id, "address_id": member.addresses[0].id,
                "lines": [{"sku_id": skus[i].id, "quantity": q} for i, q in lines]}
        with acting_as(Actor(name="storefront", authenticated=True)):
            placed = order.place(body, f"demo-{n}")
            db.session.commit()
        with acting_as(Actor(name="admin", authenticated=True)):
            _play(story, placed.trade_id)
        db.session.commit()
    return len(DEMO_TRADES)


def _demo_skus() -> dict:
    """On-sale normal SKUs by index, and one SKU of each special kind by name."""
    from models.product import Fulfilment, GoodsKind, Sku, SpuStatus

    skus = [sku for sku in Sku.query.order_by(Sku.id) if sku.spu.status == SpuStatus.on_sale]
    normal = [s for s in skus if order.order_type_of(s.spu) == "normal"
              and s.spu.fulfilment == Fulfilment.own and s.spu.goods_kind == GoodsKind.physical]
    chosen = dict(enumerate(normal[:6]))
    chosen["pre_sale"] = next(s for s in skus if order.order_type_of(s.spu) == "pre_sale")
    chosen["service"] = next(s for s in skus if s.spu.goods_kind == GoodsKind.service)
    chosen["dropship"] = next(s for s in skus if s.spu.fulfilment == Fulfilment.dropship)
    return chosen


def _play(story: str, trade_id: int) -> None:
    """Move a demo trade as far as its story says, through the order services."""
    if story == "unpaid":
        return
    if story == "cancelled":
        order.cancel_trade(trade_id, "demo: buyer changed mind")
        return
    trade = order.mark_paid(trade_id, "demo offline payment")
    notices = [n for o in trade.orders for n in o.notices]
    if story == "picking":
        order.move_notice(notices[0].id, "pick")
    if story in ("shipped", "delivered", "completed"):
        for k, notice in enumerate(notices):
            order.ship_notice(notice.id, "SF Express", f"SF{trade_id:06d}{k}")
    if story in ("delivered", "completed"):
        for o in trade.orders:
            order.deliver_order(o.id)
    if story == "completed":
        for o in trade.orders:
            order.confirm_receipt(o.id)
