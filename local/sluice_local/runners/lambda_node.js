// Runs one Lambda invocation of a Node.js handler, the way the Lambda Node.js runtime does.
// Same protocol as lambda_python.py: SLUICE_EVENT_FILE in, SLUICE_RESULT_FILE out.
"use strict";
const fs = require("fs");
const path = require("path");
const http = require("http");
const https = require("https");

// CloudFormation's ResponseURL is an https URL on AWS, and CDK's Node.js handlers PUT to it with
// https.request({hostname, path}) (port 443 implied). Locally the URL points at the gateway, which
// speaks plain http on EDGE_PORT: send such requests there.
const gatewayPort = Number(process.env.EDGE_PORT || 4566);
const httpsRequest = https.request;
https.request = function request(options, ...rest) {
  const local = options && typeof options === "object" && !(options instanceof URL) &&
    [options.hostname, options.host].includes("127.0.0.1") && !options.port;
  if (local) {
    const { agent, ...plain } = options;
    return http.request({ ...plain, protocol: "http:", port: gatewayPort }, ...rest);
  }
  return httpsRequest.call(this, options, ...rest);
};

function errorPayload(type, message, stack) {
  return { errorType: type, errorMessage: message, trace: stack || [] };
}

function writeResult(ok, payload) {
  fs.writeFileSync(process.env.SLUICE_RESULT_FILE, JSON.stringify({ ok, payload }));
}

async function loadHandler(spec) {
  const dot = spec.lastIndexOf(".");
  const modulePath = spec.slice(0, dot);
  const fnName = spec.slice(dot + 1);
  const base = path.resolve(process.cwd(), modulePath);
  let mod;
  for (const ext of [".js", ".cjs", ".mjs"]) {
    if (fs.existsSync(base + ext)) {
      mod = ext === ".mjs" ? await import(base + ext) : require(base + ext);
      break;
    }
  }
  if (mod === undefined) {
    throw Object.assign(new Error(`Cannot find module '${modulePath}'`), {
      lambdaType: "Runtime.ImportModuleError",
    });
  }
  const fn = mod[fnName];
  if (typeof fn !== "function") {
    throw Object.assign(new Error(`${modulePath}.${fnName} is undefined or not exported`), {
      lambdaType: "Runtime.HandlerNotFound",
    });
  }
  return fn;
}

async function main() {
  const requestId = process.env.SLUICE_REQUEST_ID;
  const deadline = Number(process.env.SLUICE_DEADLINE_MS);
  const event = JSON.parse(fs.readFileSync(process.env.SLUICE_EVENT_FILE, "utf8"));
  const context = {
    awsRequestId: requestId,
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    invokedFunctionArn: process.env.SLUICE_INVOKED_ARN,
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
  try {
    const handler = await loadHandler(process.env._HANDLER);
    const value = await new Promise((resolve, reject) => {
      const callback = (err, result) => (err ? reject(err) : resolve(result));
      const maybe = handler(event, context, callback);
      if (maybe && typeof maybe.then === "function") maybe.then(resolve, reject);
      else if (handler.length < 3) resolve(maybe);
    });
    writeResult(true, JSON.stringify(value === undefined ? null : value));
  } catch (err) {
    const type = (err && (err.lambdaType || err.name)) || "Error";
    const message = err && err.message !== undefined ? err.message : String(err);
    const stack = err && err.stack ? String(err.stack).split("\n") : [];
    console.error(`ERROR\tInvoke Error\t${JSON.stringify({ errorType: type, errorMessage: message })}`);
    writeResult(false, JSON.stringify(errorPayload(type, message, stack)));
  }
}

// Exit like a frozen sandbox would: open sockets (SDK keep-alive) must not keep us alive.
main().then(() => process.exit(0));
