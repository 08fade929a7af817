"""Settings, read from the environment, with safe defaults for the embedded mode.

| variable | unset means |
|---|---|
| DATABASE_URL | a SQLite file in the instance folder (the embedded default) |
| REDIS_URL | background jobs run in-process right after the commit they depend on |
| SECRET_KEY | a random key generated once and kept in the instance folder (refused in production) |
| HOUTAI_ENV | `development`; `production` requires SECRET_KEY and marks cookies secure |
| HOUTAI_TIMEZONE | Asia/Shanghai: the business day |
| MAX_UPLOAD_MB | 5 |
| DEMO_PASSWORD | a password generated once and kept in the instance folder |
| LOGIN_RATE_LIMIT | `10 per minute` for the login endpoints |
| LOG_FORMAT | `json` in production (one JSON object per line on stderr, with the request id), otherwise unset: Flask's and the server's own logging; `text` for one-line records |
| LOG_LEVEL | `INFO` |
| ACCESS_LOG | on: one `request` record per request (method, path, status, duration, user); `0` turns it off |
| HOUTAI_EXTENSIONS | none: comma-separated modules imported at start (site-specific subscribers) |
| RATELIMIT_ENABLED | on (`0` turns rate limiting off) |
| JWT_ACCESS_TOKEN_SECONDS | 900 |
| PUBLIC_BASE_URL | http://127.0.0.1:5000: where gateways and carriers reach this app |
| HOUTAI_QUEUE | `houtai`: the RQ queue name |
| HOUTAI_LOCALE | `zh`: the console's default language |
| UNPAID_TIMEOUT_MINUTES | 30: `houtai tick` cancels trades unpaid for longer |
| AFTER_SALE_DAYS | 15: days after delivery during which a buyer may request after-sales |
| NO_REASON_RETURN_DAYS | 7: days after delivery for a return without reason (七天无理由) |
| AUTO_CONFIRM_DAYS | 10: `houtai tick` completes orders delivered this long ago |
| SANDBOX_GATEWAY_SECRET | `houtai-sandbox-development-secret` outside production; in production the sandbox payment channel is off until it is set |
| SANDBOX_NOTIFY_TRANSPORT | `http`: the sandbox gateway posts its notifications to PUBLIC_BASE_URL; `wsgi`: through the app itself (tests, one process) |
| PERMISSION_CACHE_SECONDS | 10: how long a process keeps a permission answer and a REST caller's user (0: ask every time) |
| LIST_COUNT_SECONDS | 5: how long a process keeps the `count` of a REST list of LIST_COUNT_EXACT_BELOW rows or more (0: count every time) |
| LIST_COUNT_EXACT_BELOW | 1000: smaller lists are counted on every request |
| PRICE_FLOOR_SHARE | 0.10: no discount takes a line below this share of its list price |
| POINTS_PER_YUAN | 100: points spent at checkout for ¥1 off |
| POINTS_MAX_SHARE | 0.50: points pay at most this share of what is left after coupons |
| MEMBER_PROMOTION_CAP | 20: promotions (coupons included) one member may join per period (0: no cap) |
| MEMBER_PROMOTION_CAP_DAYS | 1: the length of that period, in days |
| REVIEW_DAYS | 15: days after delivery a buyer may review; then `houtai tick` records a default positive review |
| MODERATION_CONTACT_ACTION | `mask`: what a phone number, URL, WeChat or QQ id in a text does (`mask`, `review`, `block`) |
| PROMOTION_CACHE_SECONDS | 5: how long a process keeps the live promotions it prices with (0: read them on every price); placing re-checks what it takes |
| RISK_RULES_CACHE_SECONDS | 5: how long a process keeps the enabled risk rules of an event (0: read them every time); a rule saved in a process applies there at once |
| IMAGE_HASH_DISTANCE | 10: how many of the 64 perceptual-hash bits may differ for an image to match a blocked one |
| FREIGHT_CACHE_SECONDS | 5: how long a process keeps the shops' freight templates it prices carts with (0: read them on every price); a template saved in a process applies there at once |
| STOREFRONT_CACHE_SECONDS | 30: the longest the public storefront slots answer is kept (in Redis with REDIS_URL; 0: read on every request); a change or a schedule boundary ends it sooner |
| REMOTE_REGIONS | `650000,540000,630000,150000,640000,620000,460000` (Xinjiang, Tibet, Qinghai, Inner Mongolia, Ningxia, Gansu, Hainan): the provinces where carriers add their rate card's remote surcharge |
| PURCHASING_RATING_WEIGHTS | `on_time:30,quality:30,returns:20,fill_rate:20`: the weights of the supplier scorecard's factors |
| PURCHASING_QUALITY_REASONS | quality, damaged, defective, broken, not as described (and 质量, 破损, 损坏, 瑕疵, 与描述不符): comma-separated words that make an after-sales reason count against the supplier |
| PURCHASING_RATING_HOURS | 24: `houtai tick` re-rates suppliers rated longer ago |
| PURCHASING_ALERT_HOURS | 24: a replenishment rule that cannot order (no supplier or price) alerts at most this often |
| SUPPLIER_SIGNATURE_WINDOW_SECONDS | 300: how far a supplier's signed request time may be from now |
| DROPSHIP_NOTIFY_TRANSPORT | `sandbox`: drop-ship notices are kept in the process, not sent; `http`: POSTed, signed, to each supplier's notify URL |
| LISTENERS_CACHE_SECONDS | 5: how long a process keeps which webhook subscriptions and message templates are enabled, so that events nobody listens to cost nothing (0: read them on every event); a change saved in a process applies there at once |
| WEBHOOK_MAX_ATTEMPTS | 8: attempts at a webhook delivery before it is `failed` (retries wait 1, 2, 4, 8 … minutes, at most 6 hours) |
| WEBHOOK_TIMEOUT_SECONDS | 10: how long a webhook receiver may take to answer |
| SMS_ADAPTER | `sandbox`: the SMS provider messages are sent through (only the sandbox ships with Houtai) |
| SANDBOX_SMS_FAIL_PATTERN | none: a regular expression; the sandbox SMS provider refuses mobile numbers matching it (to try out failures) |
| MESSAGE_MAX_ATTEMPTS | 5: attempts at sending an SMS before it is `failed` (retries wait 1, 2, 4, 8 minutes) |
| SANDBOX_CARRIER_SECRET | `houtai-sandbox-carrier-development-secret` outside production; in production the sandbox carrier is off until it is set |
| TRACKING_PUSH_WINDOW_SECONDS | 300: how far a carrier push's own time (sandbox `X-Timestamp`) may be from now |
| TRACKING_POLL_BATCH | 100: shipments (and customs submissions) `houtai tick` polls at most per run |
| KUAIDI100_KEY, KUAIDI100_CUSTOMER, KUAIDI100_SALT | none: Kuaidi100's authorisation key, customer id and push salt (carriers with adapter `kuaidi100` are not subscribed or polled without them, and their pushes are refused) |
| KUAIDI100_QUERY_URL, KUAIDI100_SUBSCRIBE_URL | `https://poll.kuaidi100.com/poll/query.do`, `https://poll.kuaidi100.com/poll` |
| CUSTOMS_ADAPTER | `sandbox`: the customs service declarations are submitted to |
| CUSTOMS_SINGLE_LIMIT | 5000.00: the sandbox customs holds a declaration worth more (the single-transaction limit) |
| SANDBOX_CUSTOMS_SECRET | `houtai-sandbox-customs-development-secret` outside production; in production the sandbox customs is off until it is set |
| EXPORT_KEEP_DAYS | 7: `houtai tick` deletes export files finished longer ago |
| UPLOAD_FOLDER | `uploads` in the instance folder: where uploads and export files are kept (web and worker processes must share it) |
| PRICE_CUT_APPROVAL_PERCENT | 30: a price cut deeper than this percent of the old price needs an approved price batch |
| PRICE_BATCH_MAX_SKUS | 500: SKUs one price batch may change at most |

Permissions are synced by `houtai init` (once per deploy), never by each process at start.
"""
import os
import secrets
from decimal import Decimal
from pathlib import Path

from flask_appbuilder.const import AUTH_DB


class ConfigurationError(RuntimeError):
    """The environment does not describe an application that may start."""


def read_or_create_secret(instance_path: str, name: str, nbytes: int = 32) -> str:
    """Return the secret kept in the instance folder under `name`, creating it once."""
    path = Path(instance_path) / name
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(nbytes)
    path.write_text(value)
    path.chmod(0o600)
    return value


def normalise_database_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs written the usual way."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _choice(env, name: str, allowed: tuple, default: str) -> str:
    """A setting that is one of `allowed`: anything else stops the process at start."""
    value = env.get(name, default)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def build_config(instance_path: str, env: dict | None = None) -> dict:
    """All settings of one application, from `env` (default: the process environment)."""
    env = os.environ if env is None else env
    houtai_env = env.get("HOUTAI_ENV", "development")
    production = houtai_env == "production"
    secret_key = env.get("SECRET_KEY")
    if not secret_key:
        if production:
            raise ConfigurationError("SECRET_KEY must be set when HOUTAI_ENV=production")
        secret_key = read_or_create_secret(instance_path, "secret_key")
    database_url = env.get("DATABASE_URL") or (
        "sqlite:///" + str(Path(instance_path) / "houtai.db")
    )
    redis_url = env.get("REDIS_URL") or None
    max_upload_mb = int(env.get("MAX_UPLOAD_MB", "5"))
    unpaid_timeout = int(env.get("UNPAID_TIMEOUT_MINUTES", "30"))
    if unpaid_timeout < 1:
        raise ConfigurationError("UNPAID_TIMEOUT_MINUTES must be at least 1")
    return {
        "HOUTAI_ENV": houtai_env,
        "LOG_FORMAT": _choice(env, "LOG_FORMAT", ("json", "text", ""),
                              "json" if production else ""),
        "LOG_LEVEL": env.get("LOG_LEVEL", "INFO").upper(),
        "ACCESS_LOG": env.get("ACCESS_LOG", "1") != "0",
        "SECRET_KEY": secret_key,
        "SQLALCHEMY_DATABASE_URI": normalise_database_url(database_url),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "REDIS_URL": redis_url,
        "HOUTAI_TIMEZONE": env.get("HOUTAI_TIMEZONE", "Asia/Shanghai"),
        "HOUTAI_QUEUE": env.get("HOUTAI_QUEUE", "houtai"),
        "MAX_UPLOAD_MB": max_upload_mb,
        # The body limit leaves room for multipart framing around one upload.
        "MAX_CONTENT_LENGTH": max_upload_mb * 1024 * 1024 + 64 * 1024,
        "DEMO_PASSWORD": env.get("DEMO_PASSWORD") or None,
        "PUBLIC_BASE_URL": env.get("PUBLIC_BASE_URL", "http://127.0.0.1:5000"),
        # Outside production an unset secret means the documented development secret; in
        # production the sandbox channel then refuses to take payments.
        "SANDBOX_GATEWAY_SECRET": env.get("SANDBOX_GATEWAY_SECRET") or (
            None if production else "houtai-sandbox-development-secret"),
        "SANDBOX_NOTIFY_TRANSPORT": env.get("SANDBOX_NOTIFY_TRANSPORT", "http"),
        "UNPAID_TIMEOUT_MINUTES": unpaid_timeout,
        "AUTO_CONFIRM_DAYS": int(env.get("AUTO_CONFIRM_DAYS", "10")),
        "AFTER_SALE_DAYS": int(env.get("AFTER_SALE_DAYS", "15")),
        "NO_REASON_RETURN_DAYS": int(env.get("NO_REASON_RETURN_DAYS", "7")),
        "PERMISSION_CACHE_SECONDS": max(0, int(env.get("PERMISSION_CACHE_SECONDS", "10"))),
        "LIST_COUNT_SECONDS": max(0, int(env.get("LIST_COUNT_SECONDS", "5"))),
        "LIST_COUNT_EXACT_BELOW": max(0, int(env.get("LIST_COUNT_EXACT_BELOW", "1000"))),
        "PRICE_FLOOR_SHARE": Decimal(env.get("PRICE_FLOOR_SHARE", "0.10")),
        "POINTS_PER_YUAN": max(1, int(env.get("POINTS_PER_YUAN", "100"))),
        "POINTS_MAX_SHARE": Decimal(env.get("POINTS_MAX_SHARE", "0.50")),
        "MEMBER_PROMOTION_CAP": max(0, int(env.get("MEMBER_PROMOTION_CAP", "20"))),
        "MEMBER_PROMOTION_CAP_DAYS": max(1, int(env.get("MEMBER_PROMOTION_CAP_DAYS", "1"))),
        "REVIEW_DAYS": max(1, int(env.get("REVIEW_DAYS", "15"))),
        "MODERATION_CONTACT_ACTION": _choice(env, "MODERATION_CONTACT_ACTION",
                                             ("mask", "review", "block"), "mask"),
        "PROMOTION_CACHE_SECONDS": max(0, int(env.get("PROMOTION_CACHE_SECONDS", "5"))),
        "RISK_RULES_CACHE_SECONDS": max(0, int(env.get("RISK_RULES_CACHE_SECONDS", "5"))),
        "IMAGE_HASH_DISTANCE": max(0, min(32, int(env.get("IMAGE_HASH_DISTANCE", "10")))),
        "FREIGHT_CACHE_SECONDS": max(0, int(env.get("FREIGHT_CACHE_SECONDS", "5"))),
        "LISTENERS_CACHE_SECONDS": max(0, int(env.get("LISTENERS_CACHE_SECONDS", "5"))),
        "STOREFRONT_CACHE_SECONDS": max(0, int(env.get("STOREFRONT_CACHE_SECONDS", "30"))),
        "REMOTE_REGIONS": [code.strip() for code in env.get(
            "REMOTE_REGIONS", "650000,540000,630000,150000,640000,620000,460000").split(",")
            if code.strip()],
        "PURCHASING_RATING_WEIGHTS": env.get("PURCHASING_RATING_WEIGHTS",
                                             "on_time:30,quality:30,returns:20,fill_rate:20"),
        "PURCHASING_QUALITY_REASONS": env.get("PURCHASING_QUALITY_REASONS") or None,
        "PURCHASING_RATING_HOURS": max(1, int(env.get("PURCHASING_RATING_HOURS", "24"))),
        "PURCHASING_ALERT_HOURS": max(1, int(env.get("PURCHASING_ALERT_HOURS", "24"))),
        "SUPPLIER_SIGNATURE_WINDOW_SECONDS": max(
            1, int(env.get("SUPPLIER_SIGNATURE_WINDOW_SECONDS", "300"))),
        "DROPSHIP_NOTIFY_TRANSPORT": _choice(env, "DROPSHIP_NOTIFY_TRANSPORT",
                                             ("sandbox", "http"), "sandbox"),
        # integrations: webhooks and messages
        "WEBHOOK_MAX_ATTEMPTS": max(1, int(env.get("WEBHOOK_MAX_ATTEMPTS", "8"))),
        "WEBHOOK_TIMEOUT_SECONDS": max(1, int(env.get("WEBHOOK_TIMEOUT_SECONDS", "10"))),
        "SMS_ADAPTER": _choice(env, "SMS_ADAPTER", ("sandbox",), "sandbox"),
        "SANDBOX_SMS_FAIL_PATTERN": env.get("SANDBOX_SMS_FAIL_PATTERN") or None,
        "MESSAGE_MAX_ATTEMPTS": max(1, int(env.get("MESSAGE_MAX_ATTEMPTS", "5"))),
        # tracking and customs (物流中心): sandboxes off in production unless their secret is set
        "SANDBOX_CARRIER_SECRET": env.get("SANDBOX_CARRIER_SECRET") or (
            None if production else "houtai-sandbox-carrier-development-secret"),
        "TRACKING_PUSH_WINDOW_SECONDS": max(1, int(env.get("TRACKING_PUSH_WINDOW_SECONDS",
                                                           "300"))),
        "TRACKING_POLL_BATCH": max(0, int(env.get("TRACKING_POLL_BATCH", "100"))),
        "KUAIDI100_KEY": env.get("KUAIDI100_KEY") or None,
        "KUAIDI100_CUSTOMER": env.get("KUAIDI100_CUSTOMER") or None,
        "KUAIDI100_SALT": env.get("KUAIDI100_SALT") or None,
        "KUAIDI100_QUERY_URL": env.get("KUAIDI100_QUERY_URL",
                                       "https://poll.kuaidi100.com/poll/query.do"),
        "KUAIDI100_SUBSCRIBE_URL": env.get("KUAIDI100_SUBSCRIBE_URL",
                                           "https://poll.kuaidi100.com/poll"),
        "CUSTOMS_ADAPTER": _choice(env, "CUSTOMS_ADAPTER", ("sandbox",), "sandbox"),
        "CUSTOMS_SINGLE_LIMIT": Decimal(env.get("CUSTOMS_SINGLE_LIMIT", "5000.00")),
        "EXPORT_KEEP_DAYS": int(env.get("EXPORT_KEEP_DAYS", "7")),
        "SANDBOX_CUSTOMS_SECRET": env.get("SANDBOX_CUSTOMS_SECRET") or (
            None if production else "houtai-sandbox-customs-development-secret"),
        # price management (运营中心): deeper cuts wait for approval; batches have a size cap
        "PRICE_CUT_APPROVAL_PERCENT": max(Decimal("0"), min(Decimal("100"), Decimal(
            env.get("PRICE_CUT_APPROVAL_PERCENT", "30")))),
        "PRICE_BATCH_MAX_SKUS": max(1, int(env.get("PRICE_BATCH_MAX_SKUS", "500"))),
        "HOUTAI_EXTENSIONS": [m.strip() for m in env.get("HOUTAI_EXTENSIONS", "").split(",")
                              if m.strip()],
        # Flask-AppBuilder
        "APP_NAME": "Houtai 后台",
        "AUTH_TYPE": AUTH_DB,
        "AUTH_ROLE_ADMIN": "Admin",
        "AUTH_ROLE_PUBLIC": "Public",
        "AUTH_RATE_LIMITED": True,
        "AUTH_RATE_LIMIT": env.get("LOGIN_RATE_LIMIT", "10 per minute"),
        "LOGIN_RATE_LIMIT": env.get("LOGIN_RATE_LIMIT", "10 per minute"),
        "RATELIMIT_ENABLED": env.get("RATELIMIT_ENABLED", "1") != "0",
        "RATELIMIT_STORAGE_URI": redis_url or "memory://",
        "RATELIMIT_HEADERS_ENABLED": True,
        "FAB_API_SWAGGER_UI": True,
        "FAB_API_MAX_PAGE_SIZE": 100,
        "FAB_UPDATE_PERMS": False,
        "FAB_CREATE_DB": False,  # migrations create tables, never FAB at start-up
        "FAB_ADD_SECURITY_API": False,
        # FAB's menu API serves its React front end, which the console does not use
        "FAB_ADD_MENU_API": False,
        "FAB_API_SHOW_STACKTRACE": False,
        "JWT_ACCESS_TOKEN_EXPIRES": int(env.get("JWT_ACCESS_TOKEN_SECONDS", "900")),
        "WTF_CSRF_ENABLED": True,
        "WTF_CSRF_TIME_LIMIT": None,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production,
        "BABEL_DEFAULT_LOCALE": env.get("HOUTAI_LOCALE", "zh"),
        "LANGUAGES": {
            "en": {"flag": "gb", "name": "English"},
            "zh": {"flag": "cn", "name": "简体中文"},
        },
        "UPLOAD_FOLDER": env.get("UPLOAD_FOLDER") or str(Path(instance_path) / "uploads"),
        "IMG_UPLOAD_FOLDER": str(Path(instance_path) / "uploads" / "images"),
        "IMG_UPLOAD_URL": "/uploads/images/",
    }
