"""The sandbox's checkout page: one self-contained HTML document, no external assets.

It fits any width from 320 px up (a phone, or an iframe on one) without scrolling sideways:
amounts and currency codes wrap between each other, never inside a code, and long ids wrap
anywhere.

Amounts are formatted for people (:func:`format_amount`); the exact amount is in each amount's
``title``. After Pay or Decline the page shows the result and, when the session has a
``return_url``, sends the customer there after :data:`RETURN_DELAY_MS`, as the real checkout
does. From inside an iframe that is a navigation of the top window, which the embedding page
must allow: an iframe with a ``sandbox`` attribute needs ``allow-top-navigation`` or
``allow-top-navigation-by-user-activation`` (the customer's click on Pay is that activation).
When the browser refuses, a "Continue" link stays on the page: with ``target="_top"`` it needs
the same permission, so it falls back to a new tab where only ``allow-popups`` is given.
"""

from __future__ import annotations

import html
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from typing import Any
from urllib.parse import urlsplit

__all__ = ["RETURN_DELAY_MS", "checkout_page", "format_amount", "not_found_page", "safe_return_url"]

#: How long the result shows before the customer is sent to the session's return URL.
RETURN_DELAY_MS = 2000

#: Digits shown after the point of a crypto amount, counted from the first non-zero one.
CRYPTO_SIGNIFICANT_DECIMALS = 6

# Beyond 10**40 (or below 10**-40) an amount is shown as it came: no real payment is that large.
_MAX_MAGNITUDE = 40

_STYLE = """
*,*::before,*::after{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:#f4f6fb;margin:0;
padding:24px 12px;color:#1d2433;overflow-wrap:anywhere}
main{background:#fff;border-radius:12px;box-shadow:0 4px 24px rgba(0,0,0,.08);padding:24px;
width:100%;max-width:420px;margin:0 auto}
h1{font-size:18px;margin:0 0 4px}.muted{color:#6b7385;font-size:13px}
code{font-size:12px;word-break:break-all}
.amounts{margin:18px 0;padding:12px 14px;border-radius:8px;background:#f7f8fb}
.amount+.amount{margin-top:10px;padding-top:10px;border-top:1px solid #e6e9f0}
.amount b{display:block;font-size:20px;line-height:1.3;font-variant-numeric:tabular-nums}
.num{overflow-wrap:anywhere}.cur{white-space:nowrap;font-weight:600}
label{display:block;font-size:13px;margin:12px 0 6px}
input{width:100%;padding:10px;border:1px solid #ccd2de;border-radius:8px;font-size:16px;
letter-spacing:1px;min-width:0}
.buttons{display:flex;gap:10px;margin-top:16px}
button{flex:1;min-width:0;padding:11px;border:0;border-radius:8px;font-size:15px;cursor:pointer}
#pay{background:#2f6bff;color:#fff}#decline{background:#e9ecf3;color:#1d2433}
button:disabled{opacity:.5;cursor:default}
#result{margin-top:16px;padding:12px;border-radius:8px;display:none;font-weight:600}
#result.success{display:block;background:#e5f7ec;color:#137a3a}
#result.failure{display:block;background:#fde8e8;color:#a11d1d}
#result.error{display:block;background:#fff4e0;color:#8a5300}
#return{margin-top:10px;font-size:14px}#return[hidden]{display:none}
#return a{color:#2f6bff;font-weight:600}
.hint{margin-top:14px;font-size:12px;color:#6b7385}
@media (max-width:360px){body{padding:12px 8px}main{padding:16px}.amount b{font-size:18px}}
"""

_SCRIPT = """
const SESSION = document.body.dataset.session;
const RETURN_URL = document.body.dataset.returnUrl || "";
const RETURN_DELAY = Number(document.body.dataset.returnDelay || "0");
const SUCCESS = "4242424242424242", DECLINE = "4000000000000002";
const result = document.getElementById("result");
function show(kind, text) { result.className = kind; result.textContent = text; }
const framed = (() => { try { return window.top !== window.self; } catch (e) { return true; } })();
function offerReturn(text, linkText, target) {
  const link = document.getElementById("return-link");
  document.getElementById("return-text").textContent = text;
  link.textContent = linkText;
  link.target = target;
  if (target === "_blank") link.rel = "noopener";
  document.getElementById("return").hidden = false;
}
function stuck(host) {
  // The browser kept a sandboxed frame (no allow-top-navigation) from leaving: the customer
  // can still go on, in a new tab (allow-popups).
  offerReturn("This checkout cannot leave its frame.", `Continue to ${host}`, "_blank");
}
function goBack() {
  if (!RETURN_URL) return;
  const host = new URL(RETURN_URL).host;
  offerReturn(`Returning you to ${host}…`, "Continue now", framed ? "_top" : "_self");
  setTimeout(() => {
    try {
      // From inside an iframe the whole page must go, not only the frame. Setting href is
      // what a cross-origin frame may do to the top window's location (assign() is not).
      (framed ? window.top : window).location.href = RETURN_URL;
    } catch (err) {
      stuck(host);
      return;
    }
    // Some browsers refuse without an exception: still here a while later means refused.
    if (framed) setTimeout(() => stuck(host), 3000);
  }, RETURN_DELAY);
}
async function settle(action, reason) {
  document.getElementById("pay").disabled = true;
  document.getElementById("decline").disabled = true;
  try {
    const response = await fetch(`/sandbox/sessions/${encodeURIComponent(SESSION)}/${action}`, {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify(reason ? {reason} : {}),
    });
    const data = await response.json();
    if (!response.ok) { show("error", data.message || `HTTP ${response.status}`); return; }
    if (data.status === "completed") show("success", "Payment successful");
    else show("failure", `Payment declined: ${data.status_reason || "failed"}`);
    goBack();
  } catch (err) { show("error", `Network error: ${err}`); }
}
document.getElementById("pay").addEventListener("click", () => {
  const card = document.getElementById("card").value.replace(/[\\s-]/g, "");
  if (card === SUCCESS) settle("complete");
  else if (card === DECLINE) settle("fail", "Do Not Honor");
  else show("error", "Use a sandbox test card: 4242 4242 4242 4242 or 4000 0000 0000 0002");
});
document.getElementById("decline").addEventListener(
  "click", () => settle("fail", "Cancelled by customer"));
"""


def _decimal(value: object) -> Decimal | None:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def format_amount(value: object, *, crypto: bool) -> str:
    """An amount as people read it: thousands separators, a sensible number of decimals.

    Fiat: exactly 2 decimals, rounded half up (``12345.675`` → ``12,345.68``). Crypto: the
    decimals up to the sixth significant one (zeros right after the point do not count),
    cut, never rounded up, and without trailing zeros (``12933.323892`` → ``12,933.323892``,
    ``0.0421399418187522`` → ``0.0421399``, ``48.500000`` → ``48.5``). Anything that is not
    a finite number is shown as it came.
    """
    number = _decimal(value)
    if number is None or (number and abs(number.adjusted()) > _MAX_MAGNITUDE):
        return str(value)
    with localcontext() as context:
        # enough digits for every place shown: quantize must not run out of precision
        context.prec = 2 * _MAX_MAGNITUDE + CRYPTO_SIGNIFICANT_DECIMALS + 4
        if not crypto:
            return f"{number.quantize(Decimal('0.01'), ROUND_HALF_UP):,.2f}"
        fraction = abs(number) % 1
        places = CRYPTO_SIGNIFICANT_DECIMALS
        if fraction:
            # adjusted() of 0.0421… is -2: one zero after the point before the first digit
            places += -fraction.adjusted() - 1
        cut = number.quantize(Decimal(1).scaleb(-places), ROUND_DOWN)
    text = f"{cut:,f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def safe_return_url(value: object) -> str | None:
    """``value`` if it is an absolute http(s) URL a page may send the customer to, else None.

    Nothing else is followed: no ``javascript:`` or ``data:`` URL, nothing relative, nothing
    with spaces or control characters.
    """
    if not isinstance(value, str) or not value or len(value) > 2048:
        return None
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return value


def _amount(element_id: str, value: object, currency: object, *, crypto: bool) -> str:
    e = html.escape
    # the exact amount on hover, never in exponent form ("1e3" arrives as Decimal("1E+3"))
    exact = format(value, "f") if isinstance(value, Decimal) and value.is_finite() else str(value)
    return (
        f'<b id="{element_id}" title="{e(exact)} {e(str(currency))}">'
        f'<span class="num">{e(format_amount(value, crypto=crypto))}</span> '
        f'<span class="cur">{e(str(currency))}</span></b>'
    )


def checkout_page(session: dict[str, Any]) -> str:
    """The checkout page of one sandbox session."""
    e = html.escape
    done = session["status"] in ("completed", "failed")
    state = (
        f'<div id="result" class="{"success" if session["status"] == "completed" else "failure"}">'
        f"Payment already {e(session['status'])}</div>"
        if done
        else '<div id="result" role="status"></div>'
    )
    disabled = " disabled" if done else ""
    return_url = safe_return_url(session.get("return_url"))
    return_attrs = (
        f' data-return-url="{e(return_url)}" data-return-delay="{RETURN_DELAY_MS}"'
        if return_url
        else ""
    )
    return_link = (
        f'<div id="return" hidden><span id="return-text"></span> '
        f'<a id="return-link" href="{e(return_url)}">Continue</a></div>'
        if return_url
        else ""
    )
    pay = _amount("from", session["from_amount"], session["from_currency"], crypto=False)
    receive = _amount("to", session["to_amount"], session["to_currency"], crypto=True)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>InstaXchange sandbox checkout</title><style>{_STYLE}</style></head>
<body data-session="{e(session["id"])}"{return_attrs}><main>
<h1>Sandbox checkout</h1>
<div class="muted">Session <code>{e(session["id"])}</code></div>
<div class="amounts">
  <div class="amount"><span class="muted">You pay</span>{pay}</div>
  <div class="amount"><span class="muted">You receive</span>{receive}</div>
</div>
<label for="card">Card number</label>
<input id="card" inputmode="numeric" autocomplete="off" placeholder="4242 4242 4242 4242"{disabled}>
<div class="buttons"><button id="pay"{disabled}>Pay</button>
<button id="decline"{disabled}>Decline</button></div>
{state}
{return_link}
<div class="hint">Sandbox: no real money moves. 4242 4242 4242 4242 succeeds;
4000 0000 0000 0002 is declined ("Do Not Honor").</div>
</main><script>{_SCRIPT}</script></body></html>"""


def not_found_page(session_id: str) -> str:
    """The page for an unknown session id."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>Session not found</title>
<style>{_STYLE}</style></head><body><main><h1>Session not found</h1>
<p class="muted">No sandbox session <code>{html.escape(session_id)}</code>. Sessions live in the
sandbox's memory: they are gone when it restarts.</p></main></body></html>"""
