"""Registers every center's screens and REST resources with the AppBuilder."""
from flask_babel import lazy_gettext as _l


def register(appbuilder) -> None:
    from views.after_sale import AfterSaleApi, AfterSaleEventApi, AfterSaleView
    from views.audit import AuditLogApi, AuditLogView
    from views.card import CardApi, CardLedgerApi, CardLedgerView, CardView
    from views.events import EventDeliveryApi, EventDeliveryView, OutboxEventApi, OutboxEventView
    from views.inventory import (StockApi, StockLedgerApi, StockLedgerView, StockView,
                                 WarehouseApi, WarehouseView)
    from views.order import (CheckoutApi, OrderApi, OrderView, ServiceCodeApi,
                             ShippingNoticeApi, ShippingNoticeView, TradeApi, TradeView)
    from views.member import (MemberAddressApi, MemberAddressView, MemberApi, MemberLevelApi,
                              MemberLevelView, MemberView, PointsLedgerApi)
    from views.product import (AttributeApi, AttributeView, BrandApi, BrandView, CategoryApi,
                               CategoryView, PriceChangeApi, PriceChangeView, SkuApi, SkuView,
                               SpuApi, SpuTransitionApi, SpuTransitionView, SpuView)
    from views.finance import (FinanceApi, JournalEntryApi, JournalEntryView, JournalLineApi,
                               JournalLineView, ReconciliationItemApi, ReconciliationItemView,
                               ReconciliationRunApi, ReconciliationRunView, SettlementApi,
                               SettlementView)
    from views.invoice import InvoiceApi, InvoiceView
    from views.marketing import (CouponApi, CouponIssueApi, CouponView, MemberCouponApi,
                                 MemberCouponView, PricingPreviewView, PromotionApi,
                                 PromotionUsageApi, PromotionUsageView, PromotionView,
                                 PromotionZoneApi, PromotionZoneView)
    from views.payment import PaymentApi, PaymentRefundApi, PaymentRefundView, PaymentView
    from views.review import (BlockedImageApi, BlockedImageView, FeedbackApi, FeedbackView,
                              ModerationApi, RatingSummaryApi, ReviewApi, ReviewView,
                              SensitiveWordApi, SensitiveWordView)
    from views.shop import ShopApi, ShopView
    from views.ticket import (AgentApi, CallRecordApi, CallRecordView, TicketApi,
                              TicketMessageApi, TicketQueueApi, TicketQueueView, TicketView)
    from views.storage import UploadedFileApi, UploadedFileView

    appbuilder.add_view(ShopView, "Shops", label=_l("Shops"), icon="fa-shopping-bag",
                        category="Shops", category_label=_l("Shops"),
                        category_icon="fa-shopping-bag")
    appbuilder.add_api(ShopApi)

    products = dict(category="Products", category_label=_l("Products"), category_icon="fa-cube")
    appbuilder.add_view(SpuView, "Products (SPU)", label=_l("Products (SPU)"), icon="fa-cube",
                        **products)
    appbuilder.add_view(SkuView, "SKUs", label=_l("SKUs"), icon="fa-barcode", **products)
    appbuilder.add_view(PriceChangeView, "Price history", label=_l("Price history"),
                        icon="fa-line-chart", **products)
    appbuilder.add_view(SpuTransitionView, "Listing history", label=_l("Listing history"),
                        icon="fa-history", **products)
    appbuilder.add_view(CategoryView, "Categories", label=_l("Categories"), icon="fa-sitemap",
                        **products)
    appbuilder.add_view(BrandView, "Brands", label=_l("Brands"), icon="fa-tag", **products)
    appbuilder.add_view(AttributeView, "Attributes", label=_l("Attributes"), icon="fa-list",
                        **products)
    for api in (CategoryApi, BrandApi, AttributeApi, SpuApi, SkuApi, SpuTransitionApi,
                PriceChangeApi):
        appbuilder.add_api(api)

    inventory = dict(category="Inventory", category_label=_l("Inventory"),
                     category_icon="fa-cubes")
    appbuilder.add_view(StockView, "Stock", label=_l("Stock"), icon="fa-cubes", **inventory)
    appbuilder.add_view(StockLedgerView, "Stock ledger", label=_l("Stock ledger"),
                        icon="fa-book", **inventory)
    appbuilder.add_view(WarehouseView, "Warehouses", label=_l("Warehouses"), icon="fa-building",
                        **inventory)
    for api in (WarehouseApi, StockApi, StockLedgerApi):
        appbuilder.add_api(api)

    from views.wms import (PickListApi, PickListView, ReceiptApi, ReceiptView, StockCountApi,
                           StockCountView, StockTransferApi, StockTransferView, WmsNoticeApi)

    warehouse_work = dict(category="Warehouse", category_label=_l("Warehouse"),
                          category_icon="fa-archive")
    appbuilder.add_view(ReceiptView, "Receipts", label=_l("Receipts"), icon="fa-download",
                        **warehouse_work)
    appbuilder.add_view(PickListView, "Pick lists", label=_l("Pick lists"),
                        icon="fa-hand-paper-o", **warehouse_work)
    appbuilder.add_view(StockCountView, "Stock counts", label=_l("Stock counts"),
                        icon="fa-check-square-o", **warehouse_work)
    appbuilder.add_view(StockTransferView, "Transfers", label=_l("Transfers"),
                        icon="fa-exchange", **warehouse_work)
    for api in (ReceiptApi, PickListApi, WmsNoticeApi, StockCountApi, StockTransferApi):
        appbuilder.add_api(api)

    from views import purchasing

    purchasing.register(appbuilder)

    orders = dict(category="Orders", category_label=_l("Orders"), category_icon="fa-file-text")
    appbuilder.add_view(OrderView, "Orders", label=_l("Orders"), icon="fa-file-text", **orders)
    appbuilder.add_view(TradeView, "Trades", label=_l("Trades"), icon="fa-credit-card", **orders)
    appbuilder.add_view(ShippingNoticeView, "Shipping notices", label=_l("Shipping notices"),
                        icon="fa-truck", **orders)
    appbuilder.add_link("Import tracking numbers", href="/shippingnoticeview/import",
                        label=_l("Import tracking numbers"), icon="fa-upload", **orders)
    for api in (CheckoutApi, TradeApi, OrderApi, ShippingNoticeApi, ServiceCodeApi):
        appbuilder.add_api(api)

    appbuilder.add_view(AfterSaleView, "After-sales", label=_l("After-sales"),
                        icon="fa-life-ring", **orders)
    for api in (AfterSaleApi, AfterSaleEventApi):
        appbuilder.add_api(api)

    from views.logistics import (CarrierApi, CarrierRateApi, CarrierRateView, CarrierRuleApi,
                                 CarrierRuleView, CarrierView, FreightReportApi,
                                 FreightRuleApi, FreightRuleView, FreightTemplateApi,
                                 FreightTemplateView)

    logistics = dict(category="Logistics", category_label=_l("Logistics"),
                     category_icon="fa-truck")
    appbuilder.add_view(CarrierView, "Carriers", label=_l("Carriers"), icon="fa-truck",
                        **logistics)
    appbuilder.add_view(CarrierRateView, "Carrier rate cards", label=_l("Carrier rate cards"),
                        icon="fa-table", **logistics)
    appbuilder.add_view(CarrierRuleView, "Carrier selection rules",
                        label=_l("Carrier selection rules"), icon="fa-random", **logistics)
    appbuilder.add_view(FreightTemplateView, "Freight templates", label=_l("Freight templates"),
                        icon="fa-calculator", **logistics)
    appbuilder.add_view(FreightRuleView, "Freight template lines",
                        label=_l("Freight template lines"), icon="fa-list", **logistics)
    for api in (CarrierApi, CarrierRateApi, CarrierRuleApi, FreightTemplateApi, FreightRuleApi,
                FreightReportApi):
        appbuilder.add_api(api)

    from views.customs import CustomsDeclarationApi, CustomsDeclarationView
    from views.tracking import (CarrierPushApi, SandboxCarrierApi, TrackingEventApi,
                                TrackingEventView)

    appbuilder.add_view(TrackingEventView, "Tracking events", label=_l("Tracking events"),
                        icon="fa-map-marker", category="Logistics")
    appbuilder.add_view(CustomsDeclarationView, "Customs declarations",
                        label=_l("Customs declarations"), icon="fa-globe", category="Logistics")
    for api in (TrackingEventApi, CarrierPushApi, SandboxCarrierApi, CustomsDeclarationApi):
        appbuilder.add_api(api)

    payments = dict(category="Payments", category_label=_l("Payments"),
                    category_icon="fa-money")
    appbuilder.add_view(PaymentView, "Payments", label=_l("Payments"), icon="fa-money",
                        **payments)
    appbuilder.add_view(PaymentRefundView, "Refunds", label=_l("Refunds"), icon="fa-undo",
                        **payments)
    for api in (PaymentApi, PaymentRefundApi):
        appbuilder.add_api(api)

    service = dict(category="Customer service", category_label=_l("Customer service"),
                   category_icon="fa-headphones")
    appbuilder.add_view(TicketView, "Tickets", label=_l("Tickets"), icon="fa-ticket",
                        **service)
    appbuilder.add_view(TicketQueueView, "Ticket queues", label=_l("Ticket queues"),
                        icon="fa-inbox", **service)
    appbuilder.add_view(CallRecordView, "Calls", label=_l("Calls"), icon="fa-phone", **service)
    for api in (TicketApi, TicketMessageApi, CallRecordApi, TicketQueueApi, AgentApi):
        appbuilder.add_api(api)

    marketing = dict(category="Marketing", category_label=_l("Marketing"),
                     category_icon="fa-bullhorn")
    appbuilder.add_view(CouponView, "Coupons", label=_l("Coupons"), icon="fa-ticket",
                        **marketing)
    appbuilder.add_view(MemberCouponView, "Coupon wallets", label=_l("Coupon wallets"),
                        icon="fa-credit-card", **marketing)
    appbuilder.add_view(PromotionView, "Promotions", label=_l("Promotions"), icon="fa-percent",
                        **marketing)
    appbuilder.add_view(PromotionZoneView, "Promotion zones", label=_l("Promotion zones"),
                        icon="fa-th-large", **marketing)
    appbuilder.add_view(PromotionUsageView, "Promotion usage", label=_l("Promotion usage"),
                        icon="fa-list", **marketing)
    appbuilder.add_view(PricingPreviewView, "Pricing preview", label=_l("Pricing preview"),
                        icon="fa-calculator", **marketing)
    for api in (CouponApi, MemberCouponApi, CouponIssueApi, PromotionApi, PromotionZoneApi,
                PromotionUsageApi):
        appbuilder.add_api(api)

    money = dict(category="Finance", category_label=_l("Finance"), category_icon="fa-book")
    appbuilder.add_view(JournalEntryView, "Journal", label=_l("Journal"), icon="fa-book",
                        **money)
    appbuilder.add_view(JournalLineView, "Journal lines", label=_l("Journal lines"),
                        icon="fa-list", **money)
    appbuilder.add_view(ReconciliationRunView, "Reconciliation", label=_l("Reconciliation"),
                        icon="fa-check-square-o", **money)
    appbuilder.add_view(ReconciliationItemView, "Mismatches", label=_l("Mismatches"),
                        icon="fa-exclamation-triangle", **money)
    appbuilder.add_view(SettlementView, "Settlements", label=_l("Settlements"),
                        icon="fa-handshake-o", **money)
    appbuilder.add_view(InvoiceView, "Invoices", label=_l("Invoices"), icon="fa-file-o",
                        **money)
    appbuilder.add_api(InvoiceApi)
    for api in (JournalEntryApi, JournalLineApi, ReconciliationRunApi, ReconciliationItemApi,
                FinanceApi, SettlementApi):
        appbuilder.add_api(api)

    reviews = dict(category="Reviews", category_label=_l("Reviews"), category_icon="fa-star-half-o")
    appbuilder.add_view(ReviewView, "Reviews", label=_l("Reviews"), icon="fa-comments",
                        **reviews)
    appbuilder.add_link("Moderation queue", label=_l("Moderation queue"),
                        href="/reviewview/queue", icon="fa-gavel", **reviews)
    appbuilder.add_view(FeedbackView, "Feedback", label=_l("Feedback"), icon="fa-envelope",
                        **reviews)
    appbuilder.add_view(SensitiveWordView, "Sensitive words", label=_l("Sensitive words"),
                        icon="fa-ban", **reviews)
    appbuilder.add_view(BlockedImageView, "Sensitive images", label=_l("Sensitive images"),
                        icon="fa-picture-o", **reviews)
    for api in (ReviewApi, RatingSummaryApi, ModerationApi, SensitiveWordApi, BlockedImageApi,
                FeedbackApi):
        appbuilder.add_api(api)

    members = dict(category="Members", category_label=_l("Members"), category_icon="fa-users")
    appbuilder.add_view(MemberView, "Members", label=_l("Members"), icon="fa-user", **members)
    appbuilder.add_view(MemberAddressView, "Shipping addresses", label=_l("Shipping addresses"),
                        icon="fa-map-marker", **members)
    appbuilder.add_api(MemberApi)
    appbuilder.add_api(MemberAddressApi)
    appbuilder.add_api(PointsLedgerApi)
    appbuilder.add_view(MemberLevelView, "Member levels", label=_l("Member levels"),
                        icon="fa-star", **members)
    appbuilder.add_api(MemberLevelApi)
    appbuilder.add_view(CardView, "Cards", label=_l("Cards"), icon="fa-credit-card", **members)
    appbuilder.add_view(CardLedgerView, "Card ledger", label=_l("Card ledger"), icon="fa-list",
                        **members)
    appbuilder.add_api(CardApi)
    appbuilder.add_api(CardLedgerApi)

    from views.risk import (BlacklistApi, BlacklistView, CreditScoreApi, CreditScoreView,
                            RiskDecisionApi, RiskDecisionView, RiskRuleApi, RiskRuleView)

    risk = dict(category="Risk", category_label=_l("Risk"), category_icon="fa-shield")
    appbuilder.add_view(RiskDecisionView, "Risk cases", label=_l("Risk cases"),
                        icon="fa-exclamation-circle", **risk)
    appbuilder.add_view(RiskRuleView, "Risk rules", label=_l("Risk rules"), icon="fa-sliders",
                        **risk)
    appbuilder.add_view(BlacklistView, "Blacklists", label=_l("Blacklists"), icon="fa-ban",
                        **risk)
    appbuilder.add_view(CreditScoreView, "Credit scores", label=_l("Credit scores"),
                        icon="fa-tachometer", **risk)
    for api in (RiskRuleApi, BlacklistApi, RiskDecisionApi, CreditScoreApi):
        appbuilder.add_api(api)

    from views.storefront import StorefrontApi, StorefrontSlotApi, StorefrontSlotView

    appbuilder.add_view(StorefrontSlotView, "Storefront slots", label=_l("Storefront slots"),
                        icon="fa-picture-o", category="Operations",
                        category_label=_l("Operations"), category_icon="fa-bullseye")
    appbuilder.add_api(StorefrontSlotApi)
    appbuilder.add_api(StorefrontApi)

    from views import prices

    prices.register(appbuilder)

    from views import export

    export.register(appbuilder)

    from views import message, webhook

    webhook.register(appbuilder)
    message.register(appbuilder)

    appbuilder.add_view(AuditLogView, "Audit log", label=_l("Audit log"), icon="fa-history",
                        category="System", category_label=_l("System"), category_icon="fa-cogs")
    appbuilder.add_api(AuditLogApi)
    appbuilder.add_view(OutboxEventView, "Events", label=_l("Events"), icon="fa-bolt",
                        category="System")
    appbuilder.add_view(EventDeliveryView, "Event deliveries", label=_l("Event deliveries"),
                        icon="fa-paper-plane", category="System")
    appbuilder.add_view(UploadedFileView, "Uploaded files", label=_l("Uploaded files"),
                        icon="fa-file-image-o", category="System")
    appbuilder.add_api(UploadedFileApi)
    appbuilder.add_api(OutboxEventApi)
    appbuilder.add_api(EventDeliveryApi)

    from views.dashboard import DashboardApi

    appbuilder.add_api(DashboardApi)
