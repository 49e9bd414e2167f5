#!/usr/bin/env node
// Generates tests/vectors/signatures.json: webhook signature test vectors computed by
// Node.js itself with the InstaXchange signing code (see node_sign.js).
//
// Usage: node tests/vectors/make_vectors.js [output-path]
//
// Each vector is {name, body, secret, signing_string, signature} where `body` is the raw
// JSON text of a webhook, `signing_string` is JSON.stringify of its top-level-sorted
// object and `signature` is md5(`${signing_string}:${secret}`) in hex.  Bodies are kept
// as raw text on purpose: escapes such as \ud800 or \/ must reach the parser verbatim.
"use strict";

const fs = require("fs");
const path = require("path");
const { sign, signingString } = require("./node_sign.js");

const SECRET = "test-webhook-secret";

// The two webhook examples from the InstaXchange documentation, verbatim.
const DOC_COMPLETED = String.raw`{ "webhookId": "testcompleteddwebhook", "transactionId": "*****", "reference": "your_reference", "data": { "amountInFiat": 3.74, "fiatCurrency": "USD", "amountInCrypto": 0.0421399418187522, "cryptoCurrency": "LTC", "status": "completed", "statusReason": null, "walletAddress": "****", "additionalData": { "wdId": "123" }, "sessionId": "*****", "createdAt": "2024-05-22T19:58:54.097Z" }, "invoiceData": { "Email": "[email protected]", "Name": "Name Name", "Credit_card_number": "4****1111", "Invoice_ID": "****", "Status": "completed", "Wallet_address": "*****", "Details": "3.74 USD => 0.043 LTC", "Invoice_date": "22nd May, 2024", "Deposit_tx_ID": "*****", "Deposit_tx_amount": "3.74 USD", "Deposit_tx_status": "completed", "Withdraw_tx_ID": "*****", "Withdraw_tx_amount": "0.0421399418187522 LTC", "Withdraw_tx_status": "completed" }, "createdAt": "2024-05-22T19:59:05.913Z" }`;
const DOC_FAILED = String.raw`{ "webhookId": "testfailedwebhook", "transactionId": "*****", "reference": null, "data": { "amountInFiat": 5, "fiatCurrency": "USD", "amountInCrypto": 4.78, "cryptoCurrency": "USDT-AVALANCHE", "status": "failed", "statusReason": "Do Not Honor", "walletAddress": "****", "additionalData": null, "sessionId": "****", "createdAt": "2024-05-24T06:48:39.279Z" }, "invoiceData": { "Email": "[email protected]", "Name": "Name Name", "Credit_card_number": "4****1111", "Invoice_ID": "****", "Status": "failed", "Wallet_address": "*****", "Details": "5 USD => 4.78 USDT-AVALANCHE", "Invoice_date": "24th May, 2024", "Deposit_tx_ID": "*****", "Deposit_tx_amount": "5 USD", "Deposit_tx_status": "completed", "Withdraw_tx_ID": "****", "Withdraw_tx_amount": "4.78 USDT-AVALANCHE", "Withdraw_tx_status": "failed" }, "createdAt": "2024-05-24T06:53:29.503Z" }`;

// Re-serializes a body with the keys of every object (at every depth) in reverse order.
function reversedKeys(value) {
  if (Array.isArray(value)) return value.map(reversedKeys);
  if (value === null || typeof value !== "object") return value;
  const out = {};
  for (const key of Object.keys(value).reverse()) out[key] = reversedKeys(value[key]);
  return out;
}

// All escaped control characters \u0000-\u001f, as JSON escape text.
const CONTROL_ESCAPES = Array.from({ length: 32 }, (_, i) =>
  `\\u${i.toString(16).padStart(4, "0")}`,
).join("");

const VECTORS = [
  ["documented_completed", DOC_COMPLETED],
  ["documented_failed", DOC_FAILED],
  ["documented_completed_empty_secret", DOC_COMPLETED, ""],
  ["documented_failed_unicode_secret", DOC_FAILED, "sécret:with:colons:🔑:"],
  ["documented_completed_colon_secret", DOC_COMPLETED, ":"],
  ["documented_failed_lone_surrogate_secret", DOC_FAILED, "bad\ud800secret\udc00"],
  ["documented_failed_surrogate_pair_secret", DOC_FAILED, "pair\ud83d\ude00"],
  [
    "tiny_amounts",
    String.raw`{"a":0.00001,"b":1e-7,"c":0.000001,"d":5e-324,"e":1e-6,"f":0.0000015,"g":1.5e-9,"h":1e-10,"i":0.0001,"j":-0.00001,"k":0.00009999999999999999,"l":1.2345e-8,"m":-2.5e-7,"n":9.999999999999999e-7}`,
  ],
  [
    "huge_amounts",
    String.raw`{"a":1.7976931348623157e308,"b":1e21,"c":1e20,"d":123456789012345680000,"e":1e16,"f":1E300,"g":-1e21,"h":99999999999999990000,"i":1e15,"j":999999999999999900000,"k":1.5e+300,"l":2e-308}`,
  ],
  [
    "float_rounding",
    String.raw`{"sum":0.30000000000000004,"tenth":0.1,"fiat":3.74,"one":1.0,"trailing":100.50,"third":0.3333333333333333,"pi":3.141592653589793,"neg":-17.25}`,
  ],
  ["negative_zero", String.raw`{"a":-0,"b":-0.0,"c":0.0,"d":-0e5,"e":[-0,-0.0],"f":0E-10}`],
  [
    "big_integers",
    String.raw`{"a":12345678901234567890,"b":9007199254740993,"c":9007199254740992,"d":-9007199254740993,"e":18446744073709551615,"f":9007199254740991,"g":-12345678901234567890,"h":10000000000000000000000,"i":` +
      "1" +
      "0".repeat(400) +
      "}",
  ],
  ["overflow", String.raw`{"a":1e400,"b":-1e400,"c":1e-400,"d":[1e309,-1e-400],"e":123e456789}`],
  [
    // Exponents whose digits written out would take megabytes to gigabytes, and some past
    // what a Decimal holds: JavaScript reads Infinity (written null) or 0.
    "huge_exponents",
    String.raw`{"data":{"amountInFiat":1e99999999,"amountInCrypto":-1e-99999999},"a":1E+999999999999,"b":123456789e-999999999,"c":[1e9999999999999999999999,-1e9999999999999999999999,-0.0e-99999999999999999999,0e99999999],"d":1.5e-99999999999999999999999,"e":0.1e1000000000000000000001,"f":-123456789e+999999999}`,
  ],
  [
    "number_syntax",
    String.raw`{"a":1E5,"b":1e+5,"c":-1.50e-3,"d":0e0,"e":1.0e21,"f":0.5e1,"g":12.5E-1,"h":1e0}`,
  ],
  [
    "unicode_text",
    `{"name":"Zoë Ådahl","city":"München","cjk":"李小龙","emoji":"💸🚀","flag":"🇺🇸","combining":"e\\u0301","escaped":"\\u00e9\\u4e2d\\u00ff","bmp_end":"\\uffff\uffff","private":"\ue000"}`,
  ],
  [
    "line_separators",
    `{"raw":"a\u2028b\u2029c","escaped":"a\\u2028b\\u2029c","next_line":"\u0085","nbsp":"\u00a0"}`,
  ],
  [
    "escapes",
    String.raw`{"short":"\b\f\n\r\t\"\\\/","controls":"` +
      CONTROL_ESCAPES +
      String.raw`","del":"\u007f","raw_del":"` +
      "\x7f" +
      String.raw`","upper":"\u001F\u00E9","quote_key\"":"\\"}`,
  ],
  [
    "lone_surrogates",
    String.raw`{"hi":"\ud800","lo":"\udfff","mixed":"a\udfff\ud800b","reversed":"\udc00\ud800","hi_end":"x\udbff","upper":"\uDFFF","\ud800key":1}`,
  ],
  [
    "surrogate_pair_escaped",
    String.raw`{"smile":"\ud83d\ude00","upper":"\uD83D\uDE00","pair_then_lone":"\ud83d\ude00\ude00","high_high_low":"\ud83d\ud83d\ude00"}`,
  ],
  [
    "urls",
    String.raw`{"raw":"https://example.com/a/b?c=d&e=f#g","escaped":"https:\/\/example.com\/a\/b","mixed":"\/raw/and\/escaped/","callbackUrl":"https://pay.example/webhook?x=1&y=%2F"}`,
  ],
  [
    "nested_numeric_keys",
    String.raw`{"data":{"10":"a","9":"b","01":"c","-1":"d","1.5":"e","4294967294":"f","4294967295":"g","b":"h","a":"i","0":"j","1e3":"k"," 1":"l","00":"m","2":{"z":1,"11":2,"1":3}},"list":[{"3":0,"x":1,"2":2}]}`,
  ],
  [
    "top_level_numeric_keys",
    String.raw`{"b":1,"10":2,"9":3,"01":4,"-1":5,"a":6,"0":7,"4294967295":8,"4294967294":9,"100":10,"1.5":11,"":12}`,
  ],
  [
    "utf16_key_order",
    String.raw`{"\uffff":1,"😀":2,"\ue000":3,"a":4,"é":5,"\ud7ff":6,"\ud83d\ude01":7,"𝄞":8,"Z":9,"\ud800":10}`,
  ],
  ["empty_containers", String.raw`{"o":{},"a":[],"n":{"x":{},"y":[[],{}]},"s":""}`],
  ["empty_object", "{}"],
  ["whitespace_only_object", " \t\r\n{ \n\t} \r\n"],
  [
    "extra_top_level_keys",
    DOC_COMPLETED.replace(
      /^\{/,
      String.raw`{"zeta":true,"Alpha":false,"_meta":{"retry":2},"amount":1e21,`,
    ),
  ],
  ["shuffled_top_level", JSON.stringify(reversedKeys(JSON.parse(DOC_COMPLETED)))],
  ["shuffled_failed", JSON.stringify(reversedKeys(JSON.parse(DOC_FAILED)))],
  [
    "duplicate_keys",
    String.raw`{"a":1,"b":2,"a":3,"n":{"x":1,"y":0,"x":{"y":2}},"10":"first","2":0,"10":"last"}`,
  ],
  [
    "pretty_printed",
    ` \t\r\n${JSON.stringify(JSON.parse(DOC_COMPLETED), null, "\t").replace(/\n/g, "\r\n")}\n  `,
  ],
  [
    "pretty_printed_handwritten",
    '{\n  "amount" :\t0.00001 ,\r\n  "list" : [ 1 , -0 , 1e21 ,\n\t{ "9" : 9 , "10" : 10 } ] ,\n  "s" : "a , b : c"\n}\n',
  ],
  ["proto_object_top_level", String.raw`{"__proto__":{"x":1},"a":1,"b":{"__proto__":{"y":2}}}`],
  ["proto_primitive_top_level", String.raw`{"b":2,"__proto__":5,"a":[{"__proto__":null}]}`],
  ["to_json_keys", String.raw`{"toJSON":"not a function","n":{"toJSON":1},"constructor":"x","valueOf":2}`],
  [
    "mixed_arrays",
    String.raw`{"arr":[1,"a",null,true,false,1.5,{"b":1,"a":2},[[]],-0,1e-7,"\u0000"],"nul":null,"t":true,"f":false}`,
  ],
  ["deep_nesting", `{"d":${'{"a":['.repeat(60)}1${"]}".repeat(60)}}`],
  [
    "realistic_payment",
    String.raw`{"webhookId":"wh_01HZX","transactionId":"tx_7f3a","reference":"order-42/ä","data":{"amountInFiat":1000000,"fiatCurrency":"EUR","amountInCrypto":0.00001234,"cryptoCurrency":"BTC","status":"completed","statusReason":null,"walletAddress":"bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh","additionalData":{"2":"two","1":"one","note":"Thanks! 🙏"},"sessionId":"s_1","createdAt":"2024-06-01T00:00:00.000Z"},"createdAt":"2024-06-01T00:00:01.000Z"}`,
  ],
];

function build() {
  const names = new Set();
  return VECTORS.map(([name, body, secret = SECRET]) => {
    if (names.has(name)) throw new Error(`duplicate vector name ${name}`);
    names.add(name);
    const parsed = JSON.parse(body);
    return {
      name,
      body,
      secret,
      signing_string: signingString(parsed),
      signature: sign(parsed, secret),
    };
  });
}

const output = process.argv[2] || path.join(__dirname, "signatures.json");
fs.writeFileSync(output, `${JSON.stringify(build(), null, 2)}\n`);
