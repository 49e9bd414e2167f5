"""The sandbox's checkout page: one self-contained HTML document, no external assets."""

from __future__ import annotations

import html
from decimal import Decimal
from typing import Any

__all__ = ["checkout_page", "not_found_page"]

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:#f4f6fb;margin:0;
display:flex;justify-content:center;padding:32px 12px;color:#1d2433}
main{background:#fff;border-radius:12px;box-shadow:0 4px 24px rgba(0,0,0,.08);padding:28px;
width:100%;max-width:380px}
h1{font-size:18px;margin:0 0 4px}.muted{color:#6b7385;font-size:13px}
.amounts{display:flex;justify-content:space-between;margin:20px 0;padding:14px;border-radius:8px;
background:#f7f8fb}.amounts b{display:block;font-size:20px}
label{display:block;font-size:13px;margin:12px 0 6px}
input{width:100%;box-sizing:border-box;padding:10px;border:1px solid #ccd2de;border-radius:8px;
font-size:16px;letter-spacing:1px}
.buttons{display:flex;gap:10px;margin-top:16px}
button{flex:1;padding:11px;border:0;border-radius:8px;font-size:15px;cursor:pointer}
#pay{background:#2f6bff;color:#fff}#decline{background:#e9ecf3;color:#1d2433}
button:disabled{opacity:.5;cursor:default}
#result{margin-top:16px;padding:12px;border-radius:8px;display:none;font-weight:600}
#result.success{display:block;background:#e5f7ec;color:#137a3a}
#result.failure{display:block;background:#fde8e8;color:#a11d1d}
#result.error{display:block;background:#fff4e0;color:#8a5300}
.hint{margin-top:14px;font-size:12px;color:#6b7385}
"""

_SCRIPT = """
const SESSION = document.body.dataset.session;
const SUCCESS = "4242424242424242", DECLINE = "4000000000000002";
const result = document.getElementById("result");
function show(kind, text) { result.className = kind; result.textContent = text; }
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


def _plain(amount: Decimal) -> str:
    """``Decimal("1E+3")`` (as ``"1e3"`` was sent) → ``1000``: no exponent on the page."""
    return format(amount, "f")


def checkout_page(session: dict[str, Any]) -> str:
    """The checkout page of one sandbox session."""
    e = html.escape
    done = session["status"] in ("completed", "failed")
    state = (
        f'<div id="result" class="{"success" if session["status"] == "completed" else "failure"}">'
        f"Payment already {e(session['status'])}</div>"
        if done
        else '<div id="result"></div>'
    )
    disabled = " disabled" if done else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>InstaXchange sandbox checkout</title><style>{_STYLE}</style></head>
<body data-session="{e(session["id"])}"><main>
<h1>Sandbox checkout</h1>
<div class="muted">Session <code>{e(session["id"])}</code></div>
<div class="amounts">
  <div><span class="muted">You pay</span><b id="from">{e(_plain(session["from_amount"]))}
  {e(session["from_currency"])}</b></div>
  <div style="text-align:right"><span class="muted">You receive</span>
  <b id="to">{e(_plain(session["to_amount"]))} {e(session["to_currency"])}</b></div>
</div>
<label for="card">Card number</label>
<input id="card" inputmode="numeric" autocomplete="off" placeholder="4242 4242 4242 4242"{disabled}>
<div class="buttons"><button id="pay"{disabled}>Pay</button>
<button id="decline"{disabled}>Decline</button></div>
{state}
<div class="hint">Sandbox: no real money moves. 4242 4242 4242 4242 succeeds;
4000 0000 0000 0002 is declined ("Do Not Honor").</div>
</main><script>{_SCRIPT}</script></body></html>"""


def not_found_page(session_id: str) -> str:
    """The page for an unknown session id."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Session not found</title>
<style>{_STYLE}</style></head><body><main><h1>Session not found</h1>
<p class="muted">No sandbox session <code>{html.escape(session_id)}</code>. Sessions live in the
sandbox's memory: they are gone when it restarts.</p></main></body></html>"""
