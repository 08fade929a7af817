"""A Kuaidi100-style tracking aggregator (快递100): subscribe (订阅), signed pushes (推送) and
the real-time query (实时查询). The carrier's code at the aggregator is `Carrier.adapter_code`
(e.g. `shunfeng`).

* Subscribe: POST `KUAIDI100_SUBSCRIBE_URL` form `schema=json&param={"company", "number",
  "key", "parameters": {"callbackurl", "salt", "resultv2": "1"}}`; `returnCode` 200 (accepted)
  or 501 (already subscribed) is success.
* Push: a form POST with `param` (JSON: `{"status", "billstatus", "message", "lastResult":
  {"nu", "com", "state", "ischeck", "data": [{"context", "time", "ftime", "status",
  "statusCode", "areaName"}]}}`) and `sign` = upper-case MD5(param + KUAIDI100_SALT). It has
  no nonce or time of its own: its replay key is the digest of `param`, so the same push
  twice has one effect. The answer it expects: `{"result": true, "returnCode": "200"}`.
* Query: POST `KUAIDI100_QUERY_URL` form `customer`, `param={"com", "num", "resultv2": "1"}`,
  `sign` = upper-case MD5(param + KUAIDI100_KEY + KUAIDI100_CUSTOMER).

Times are China time without an offset (HOUTAI_TIMEZONE). Network calls go through a transport
(`app.extensions["houtai_kuaidi100_transport"]` replaces it, e.g. in tests).
"""
import hashlib
import hmac
import json
import logging
import re
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlencode

from flask import current_app

from services import carriers
from services.clock import business_zone
from services.errors import BadRequestError, ConflictError, ValidationFailed

log = logging.getLogger(__name__)

NAME = "kuaidi100"
TRANSPORT_KEY = "houtai_kuaidi100_transport"
# Kuaidi100's state codes (and the first digits of their sub-states) → our statuses
STATES = {"0": "in_transit", "1": "collected", "2": "exception", "3": "signed", "4": "returned",
          "5": "out_for_delivery", "6": "returned", "7": "in_transit", "8": "in_transit",
          "10": "in_transit", "11": "in_transit", "12": "in_transit", "13": "exception",
          "14": "exception"}
# what a scan's own `status` says, when it names it in words
STATE_WORDS = {"在途": "in_transit", "揽收": "collected", "疑难": "exception",
               "签收": "signed", "退签": "returned", "派件": "out_for_delivery",
               "退回": "returned", "转投": "in_transit", "清关": "in_transit",
               "待清关": "in_transit", "清关中": "in_transit", "已清关": "in_transit",
               "清关异常": "exception", "拒签": "exception"}


def md5_upper(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest().upper()


def status_of(code) -> str | None:
    """Our status for a Kuaidi100 state or sub-state code ("3", "301", "1002", "14")."""
    code = str(code or "").strip()
    if not re.fullmatch(r"[0-9]{1,4}", code):
        return None
    if code in STATES:
        return STATES[code]
    if len(code) == 3:               # 101, 301, 501, ...: the first digit is the state
        return STATES.get(code[0])
    if len(code) == 4:               # 1001..1003 are 在途's; 1101.. the two-digit states'
        return STATES["0"] if code.startswith("100") else STATES.get(code[:2])
    return None


def _config(name: str) -> str:
    value = current_app.config.get(name)
    if not value:
        raise ConflictError(f"Kuaidi100 is not configured: set {name}",
                            {"adapter": ["Not configured."]})
    return value


class FormTransport:
    """A form POST over the network; answers (status, body)."""

    def post_form(self, url: str, form: dict) -> tuple[int, bytes]:
        return carriers.HttpTransport().post(
            url, urlencode(form).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"})


def transport():
    return current_app.extensions.get(TRANSPORT_KEY) or FormTransport()


def _moment(text) -> datetime | None:
    try:
        moment = datetime.strptime(str(text), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return moment.replace(tzinfo=business_zone()).astimezone(timezone.utc)


def scans_of(result: dict) -> list[carriers.Scan]:
    """The scans of a `lastResult` (push) or query answer, oldest first."""
    number = result.get("nu")
    if not isinstance(number, str) or not number.strip() or len(number) > 64:
        raise ValidationFailed.field("nu", "The tracking number.")
    data = result.get("data")
    if not isinstance(data, list) or len(data) > 500:
        raise ValidationFailed.field("data", "A list of at most 500 scans.")
    newest_state = status_of(result.get("state"))
    found = []
    for n, item in enumerate(data):       # newest first, as Kuaidi100 sends them
        if not isinstance(item, dict):
            raise ValidationFailed.field(f"data.{n}", "An object.")
        occurred_at = _moment(item.get("ftime") or item.get("time"))
        if occurred_at is None:
            raise ValidationFailed.field(f"data.{n}.time", "YYYY-MM-DD HH:MM:SS.")
        context = str(item.get("context") or "")[:255]
        status = status_of(item.get("statusCode")) or \
            STATE_WORDS.get(str(item.get("status") or "")) or \
            (newest_state if n == 0 else None) or "in_transit"
        location = item.get("areaName") or item.get("location")
        external_id = hashlib.sha256(
            f"{item.get('time') or item.get('ftime')}|{context}".encode()).hexdigest()[:40]
        found.append(carriers.Scan(
            tracking_no=number.strip(), external_id=external_id, status=status,
            description=context or None,
            location=str(location)[:64] if isinstance(location, str) and location else None,
            occurred_at=occurred_at))
    return list(reversed(found))


class Kuaidi100:
    name = NAME

    def parse_push(self, carrier, body: bytes, headers) -> carriers.Push:
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20,
                            strict_parsing=False)
        except (UnicodeDecodeError, ValueError):
            form = {}
        param = (form.get("param") or [""])[0]
        signature = (form.get("sign") or [""])[0]
        salt = current_app.config.get("KUAIDI100_SALT") or ""
        if not salt or not param or not re.fullmatch(r"[0-9A-Fa-f]{32}", signature) or \
                not hmac.compare_digest(signature.upper().encode(),
                                        md5_upper(param + salt).encode()):
            raise carriers.BadSignature("Bad or missing signature",
                                        {"sign": ["Does not match param and the salt."]})
        try:
            data = json.loads(param)
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("lastResult"), dict):
            raise BadRequestError("Not a Kuaidi100 push", {"param": ["lastResult missing."]})
        return carriers.Push(nonce=hashlib.sha256(param.encode()).hexdigest(), sent_at=None,
                             scans=scans_of(data["lastResult"]))

    def acknowledge(self) -> dict:
        return {"result": True, "returnCode": "200", "message": "成功"}

    def polls(self) -> bool:
        return bool(current_app.config.get("KUAIDI100_KEY") and
                    current_app.config.get("KUAIDI100_CUSTOMER"))

    def poll(self, carrier, tracking_no: str) -> list[carriers.Scan]:
        key, customer = _config("KUAIDI100_KEY"), _config("KUAIDI100_CUSTOMER")
        param = json.dumps({"com": carrier.adapter_code or carrier.code, "num": tracking_no,
                            "resultv2": "1"}, separators=(",", ":"), ensure_ascii=False)
        status, answer = transport().post_form(
            current_app.config["KUAIDI100_QUERY_URL"],
            {"customer": customer, "param": param, "sign": md5_upper(param + key + customer)})
        try:
            data = json.loads(answer) if status == 200 else None
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ConflictError("Kuaidi100 did not answer the query",
                                {"adapter": [f"HTTP {status}"]})
        if str(data.get("status")) != "200":       # e.g. no trace yet: nothing to add
            return []
        return scans_of(data)

    def subscribe(self, carrier, tracking_no: str) -> None:
        """Without KUAIDI100_KEY and KUAIDI100_SALT nothing is subscribed (logged)."""
        if not (current_app.config.get("KUAIDI100_KEY") and
                current_app.config.get("KUAIDI100_SALT")):
            log.info("Kuaidi100 is not configured: %s %s not subscribed", carrier.code,
                     tracking_no)
            return
        param = json.dumps({
            "company": carrier.adapter_code or carrier.code, "number": tracking_no,
            "key": _config("KUAIDI100_KEY"),
            "parameters": {"callbackurl": carriers.public_url(carriers.push_path(carrier.code)),
                           "salt": _config("KUAIDI100_SALT"), "resultv2": "1"}},
            separators=(",", ":"), ensure_ascii=False)
        status, answer = transport().post_form(current_app.config["KUAIDI100_SUBSCRIBE_URL"],
                                               {"schema": "json", "param": param})
        try:
            code = str(json.loads(answer).get("returnCode")) if status == 200 else None
        except (ValueError, AttributeError):
            code = None
        if code not in ("200", "501"):
            raise ConflictError("Kuaidi100 refused the subscription",
                                {"adapter": [f"HTTP {status}: {answer[:200]!r}"]})


carriers.register(Kuaidi100())
