// The README's integrator flow, driven by the TypeScript client openapi-typescript and
// openapi-fetch make of openapi/openapi.yaml (types in `nexus.d.ts`), type-checked with
// `tsc --strict`: create a host, issue a token, push a snapshot, read the typed 422, list
// hosts, read the metrics without a range (the document makes it optional), read the
// auth-failure summary. No cast, no hand-written field: every body is the generated types' own.
// tests/api/generated_client.rs runs it against a live server with NEXUS_URL and
// NEXUS_ADMIN_TOKEN set, and checks what it stored.

import assert from "node:assert/strict";
import createClient from "openapi-fetch";
import type { components, paths } from "./nexus.js";

function env(name: string): string {
  const value = process.env[name];
  if (value === undefined) {
    throw new Error(`${name} is not set`);
  }
  return value;
}

const url = env("NEXUS_URL");

function client(bearer: string) {
  return createClient<paths>({ baseUrl: url, headers: { Authorization: `Bearer ${bearer}` } });
}

function snapshot(cpu_percent: number): components["schemas"]["TelemetryPayload"] {
  return {
    recorded_at: new Date().toISOString(),
    host: {
      metrics: { cpu_percent, memory_used_mb: 2048, memory_total_mb: 8192, load_average: 0.42 },
    },
  };
}

const admin = client(env("NEXUS_ADMIN_TOKEN"));

const created = await admin.POST("/api/v1/hosts", { body: { name: "ts-web-01" } });
assert.ok(created.data, `create_host answered ${created.response.status}`);
const host = created.data;
assert.equal(host.status, "pending");

const issued = await admin.POST("/api/v1/hosts/{host_id}/tokens", {
  params: { path: { host_id: host.id } },
  body: { name: "agent" },
});
assert.ok(issued.data, `issue_host_token answered ${issued.response.status}`);
assert.equal(issued.data.bind_fingerprint, false);
const agent = client(issued.data.token);

const stored = await agent.POST("/agent/telemetry", { body: snapshot(12.34) });
assert.equal(stored.response.status, 204);

const refused = await agent.POST("/agent/telemetry", { body: snapshot(250) });
assert.ok(refused.error, `push_telemetry answered ${refused.response.status}`);
assert.equal(refused.error.status, 422);
assert.equal(refused.error.type, "tag:nexus-telemetry,2026:problem:validation");
assert.equal(refused.error.errors[0]?.field, "host.metrics.cpu_percent");

const page = await admin.GET("/api/v1/hosts", { params: { query: { name: "ts-web" } } });
assert.ok(page.data, `list_hosts answered ${page.response.status}`);
assert.deepEqual(
  page.data.items.map((listed) => listed.name),
  ["ts-web-01"],
);
assert.equal(page.data.next_cursor, null);

// No range: the last hour, as the document says.
const series = await admin.GET("/api/v1/hosts/{host_id}/metrics", {
  params: { path: { host_id: host.id } },
});
assert.ok(series.data, `get_host_metrics answered ${series.response.status}`);
assert.equal(series.data.points.length, 1);
assert.equal(series.data.points[0]?.cpu_percent.max, 12.34, "read back as sent");
assert.equal(series.data.points[0]?.load_average.min, 0.42, "read back as sent");
assert.ok(Date.parse(series.data.since) < Date.parse(series.data.until));

const unknown = await client(`nxa_${"0".repeat(64)}`).POST("/agent/telemetry", {
  body: snapshot(1),
});
assert.equal(unknown.error?.status, 401);
const report = await admin.GET("/api/v1/auth-failures");
assert.ok(report.data, `list_auth_failures answered ${report.response.status}`);
const invalid = report.data.items.filter((line) => line.reason === "invalid");
assert.equal(invalid.length, 1);
assert.equal(invalid[0]?.last_token_id, null, "no token was identified");

console.log(`typescript client: host ${host.id} round trip done`);
