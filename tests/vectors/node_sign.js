#!/usr/bin/env node
// Reference implementation of the InstaXchange webhook signature, as run by the sender.
//
// As a module it exports `sign` (the documented signing code) and `signingString` (the
// JSON text it hashes).  Run directly, it is a line-oriented signing service used by the
// differential tests: every stdin line is a JSON object {"body": <raw JSON text>,
// "secret": <string>} and produces one stdout line {"signing_string", "signature"} or
// {"error": <message>} when JSON.parse rejects the body.  No npm packages are needed.
"use strict";

const { createHash } = require("crypto");

function sortTopLevel(body) {
  const sorted = {};
  Object.keys(body).sort().forEach((k) => {
    sorted[k] = body[k];
  });
  return sorted;
}

function sign(body, secret) {
  const sorted = {};
  Object.keys(body).sort().forEach((k) => {
    sorted[k] = body[k];
  });
  return createHash("md5").update(`${JSON.stringify(sorted)}:${secret}`).digest("hex");
}

function signingString(body) {
  return JSON.stringify(sortTopLevel(body));
}

module.exports = { sign, signingString };

if (require.main === module) {
  const readline = require("readline");
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  lines.on("line", (line) => {
    let result;
    try {
      const request = JSON.parse(line);
      const body = JSON.parse(request.body);
      result = { signing_string: signingString(body), signature: sign(body, request.secret) };
    } catch (error) {
      result = { error: String(error) };
    }
    process.stdout.write(`${JSON.stringify(result)}\n`);
  });
}
