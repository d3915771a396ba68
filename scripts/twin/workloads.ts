/**
 * The workloads in the site twin (issue 12): on a compose site every
 * virtualization host runs its rendered Compose projects with the real
 * `docker-compose` against its own container engine (`containers.ts`), as
 * `standort-compose@<project>.service` would, behind its rendered ingress
 * (HAProxy). The scenario then proves the whole path and the policy:
 *
 * - every instance answers through the ingress of every virtualization host in
 *   its mode (read-write on 8443, read-only on 8444), asked by the proxy pair;
 * - every name the site answers crosses internet → firewall → proxy → ingress
 *   → container and back;
 * - a file written through the read-write instance lands on the storage export
 *   and is read back through another host; the read-only instance refuses it;
 * - a port a container publishes that no zone rule sends to the virtualization
 *   hosts is unreachable from the other segments and from a neighbour in the
 *   same segment, where only the host's own forward filter stands between
 *   (named probes), while the host itself reaches it (the container is there).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { siteServices } from "../../lib/footprint/services";
import { WorkloadInstance, workloadInstances } from "../../lib/footprint/workloads";
import { ingressPort } from "../../lib/footprint/ingress";
import { WEB_PORTS } from "../../lib/render/policy";
import { publicProxy } from "./readonly";
import { ENGINES_DIR_PREFIX } from "./janitor";
import { ContainerHost, StartedContainer, buildTwinImage } from "./containers";
import type { Machine } from "./machine";
import type { SiteTwin } from "./site";

/** Rendered Compose projects: `/etc/standort/compose/<project>/compose.yaml`. */
export const COMPOSE_PROJECT_FILE = /^\/etc\/standort\/compose\/([^/]+)\/compose\.yaml$/;

/** The container engines of a site's virtualization hosts, one per host. */
export class TwinWorkloads {
  private readonly engines = new Map<string, ContainerHost>();
  private image?: Promise<string>;
  /** The engines' folders: short, because podman refuses a run root longer than 50 characters. */
  private base?: string;

  constructor(private readonly log: (line: string) => void) {}

  /**
   * Starts `host`'s engine in its machine and brings up every rendered project, in project order
   * (the order delivery enables their units). Returns the containers started.
   */
  async start(host: string, machine: Machine, projects: ReadonlyArray<{ project: string; content: string }>): Promise<StartedContainer[]> {
    if (projects.length === 0) return [];
    this.image ??= buildTwinImage();
    const engine = new ContainerHost({
      name: host,
      ns: machine.ns,
      mountFile: machine.mountFile,
      dir: join(this.folder(), host),
      image: await this.image,
      log: this.log,
    });
    this.engines.set(host, engine);
    await engine.start();
    const started: StartedContainer[] = [];
    for (const p of projects) started.push(...(await engine.up(p.project, p.content, { twinHost: host })));
    this.log(`${host}: ${projects.length} project(s) up (${started.length} containers)`);
    return started;
  }

  /** The engines' folder, made on first use and marked with this process as its owner (the janitor reaps it). */
  private folder(): string {
    if (!this.base) {
      this.base = mkdtempSync(join(tmpdir(), ENGINES_DIR_PREFIX));
      writeFileSync(join(this.base, "owner"), `${process.pid}\n`);
    }
    return this.base;
  }

  /** The host died: its engine and containers are gone with it. */
  crashed(host: string): void {
    this.engines.get(host)?.destroy();
    this.engines.delete(host);
  }

  /** Removes every engine (synchronous: also from exit handlers). */
  destroy(): void {
    for (const engine of this.engines.values()) engine.destroy();
    this.engines.clear();
    if (this.base) rmSync(this.base, { recursive: true, force: true });
  }
}

/** One instance answering (or not) through one host's ingress, or through the whole public path. */
export interface WorkloadEntry {
  readonly service: string;
  /** `rw` (read-write, 8443) or `ro` (read-only, 8444). */
  readonly mode: "rw" | "ro";
  /** The virtualization host that answered (for `path: internet`, whichever the proxies chose). */
  readonly host: string;
  readonly name: string;
  /** `ingress`: asked at the host's ingress by the active proxy; `internet`: through the site's public path. */
  readonly path: "ingress" | "internet";
  readonly ok: boolean;
  readonly answer: string;
}

/** A file written through an instance and read back through another host's. */
export interface WorkloadDataEntry {
  readonly service: string;
  readonly tree: string;
  readonly writtenVia: string;
  readonly readVia: string;
  /** HTTP status of the write (201), of the read (200), and of the same write to the read-only instance (403), if any. */
  readonly write: number;
  readonly read: number;
  readonly sameContent: boolean;
  readonly readOnlyWrite?: number;
  readonly ok: boolean;
}

/** A published port probed from another segment: it must be unreachable unless a zone rule sends it. */
export interface PublishedProbe {
  readonly id: string;
  readonly from: string;
  readonly target: string;
  readonly port: number;
  readonly blocked: boolean;
  /** The host itself reaches the container's port (the container is there and listening). */
  readonly control: boolean;
}

export interface WorkloadsReport {
  readonly workloads: ReadonlyArray<WorkloadEntry>;
  readonly data: ReadonlyArray<WorkloadDataEntry>;
  readonly published: ReadonlyArray<PublishedProbe>;
  readonly ms: number;
}

/** How long the ingress's upstreams may take to be checked up after boot (HAProxy: rise 2 × inter 2 s, plus the containers' start). */
const READY_TIMEOUT_MS = 30_000;

const modeOf = (i: WorkloadInstance) => (i.access === "read-write" ? "rw" : "ro");

/** The answer of the twin's application through an ingress: `<host> <mode> <port> <name> <peer> <service> <access> <container>`. */
function answered(answer: string, i: WorkloadInstance, name: string): { ok: boolean; host: string } {
  const body = answer.split("|").pop()?.trim().split(" ") ?? [];
  const ok =
    answer.startsWith("HTTP/1.1 200 OK") &&
    body[1] === modeOf(i) &&
    body[2] === String(ingressPort(i.access)) &&
    body[3] === name &&
    body[5] === i.service &&
    body[6] === i.access;
  return { ok, host: body[0] ?? "" };
}

/** curl inside a machine: the HTTP status and body of one request to the ingress of `address` by `name`. */
export async function ingressRequest(
  twin: SiteTwin,
  machine: string,
  address: string,
  port: number,
  name: string,
  path: string,
  body?: string,
): Promise<{ status: number; body: string }> {
  const argv = [
    "curl",
    "-sk",
    "--max-time",
    "10",
    "--resolve",
    `${name}:${port}:${address}`,
    "-o",
    "-",
    "-w",
    "\n%{http_code}",
    ...(body !== undefined ? ["-X", "PUT", "--data-binary", "@-", "-H", "Content-Type: application/octet-stream"] : []),
    `https://${name}:${port}${path}`,
  ];
  const r = await twin.machine(machine).exec(argv, { input: body, timeoutMs: 20_000 });
  const lines = r.stdout.split("\n");
  const status = Number(lines.pop());
  return { status: Number.isFinite(status) ? status : 0, body: lines.join("\n") };
}

/**
 * Runs the workloads scenario on a booted compose site. Every virtualization host must be up.
 * Probes run from the active proxy (the ingress's one client), the internet and the storage pair.
 */
export async function workloadsScenario(twin: SiteTwin, log: (line: string) => void = () => undefined): Promise<WorkloadsReport> {
  const t0 = performance.now();
  const model = twin.model;
  const instances = workloadInstances(twin.footprint, siteServices(twin.footprint, twin.sites, model.name));
  const virtualization = model.hosts.filter((h) => h.role === "virtualization").sort((a, b) => a.ordinal - b.ordinal);
  const app = (name: string) => virtualization.find((h) => h.name === name)!.interfaces.find((i) => i.segment === "app")!.address;
  const proxyPair = model.pairs.find((p) => p.role === "proxy")!;
  const [proxy] = await twin.holders(proxyPair.vips[0].address, proxyPair.members);
  const asker = proxy ?? proxyPair.active;

  // The ingress checks its upstreams every 2 s and needs two successes after a container came up: wait (bounded)
  // until every instance answers at every host, as the proxies' own checks would before sending traffic.
  const ready = performance.now();
  for (;;) {
    const outcomes = await twin.probe(
      asker,
      virtualization.flatMap((host) =>
        instances.map((i) => ({
          id: `${host.name} ${i.project}`,
          protocol: "tls" as const,
          target: app(host.name),
          port: ingressPort(i.access),
          sni: i.names[0],
          timeoutMs: 3_000,
        })),
      ),
    );
    if (outcomes.every((o) => (o.answer ?? "").startsWith("HTTP/1.1 200")) || performance.now() - ready > READY_TIMEOUT_MS) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  log(`ingress upstreams ready after ${Math.round(performance.now() - ready)} ms`);

  // Every name of every instance, asked from `from` at `target`:`port` (the instance's ingress port, or 443 at the public address).
  const ask = async (from: string, target: string, port: (i: WorkloadInstance) => number, path: WorkloadEntry["path"], host?: string) => {
    const asked = instances.flatMap((i) => i.names.map((name) => ({ i, name })));
    const outcomes = await twin.probe(
      from,
      asked.map(({ i, name }) => ({
        id: `${i.project} ${name}`,
        protocol: "tls" as const,
        target,
        port: port(i),
        sni: name,
        timeoutMs: 5_000,
      })),
    );
    return asked.map(({ i, name }, k): WorkloadEntry => {
      const answer = outcomes[k].answer ?? outcomes[k].result;
      const a = answered(answer, i, name);
      const at = host ?? a.host;
      return {
        service: i.service,
        mode: modeOf(i),
        host: at,
        name,
        path,
        ok: a.ok && virtualization.some((h) => h.name === at) && a.host === at,
        answer,
      };
    });
  };
  const workloads: WorkloadEntry[] = [];
  for (const host of virtualization)
    workloads.push(...(await ask(asker, app(host.name), (i) => ingressPort(i.access), "ingress", host.name)));
  const address = publicProxy(twin);
  if (address) workloads.push(...(await ask("internet", address, () => WEB_PORTS[1], "internet")));
  for (const w of workloads.filter((x) => !x.ok)) log(`workload ${w.service} ${w.mode} via ${w.path} at ${w.host || "?"}: ${w.answer}`);

  // Data on the storage export: written through one host's read-write instance, read through another's.
  const data: WorkloadDataEntry[] = [];
  const [first, second] = virtualization;
  for (const i of instances.filter((x) => x.access === "read-write")) {
    const serving = i.workload.containers.find((c) => c.port !== undefined)!;
    const tree = serving.volumes[0]?.tree;
    if (!tree || !second) continue;
    const name = i.names[0];
    const content = `written through ${first.name} for ${i.service} at ${Date.now()}\n`;
    const file = `/files/${tree}/twin-workload-${process.pid}.txt`;
    const put = await ingressRequest(twin, asker, app(first.name), ingressPort(i.access), name, file, content);
    const get = await ingressRequest(twin, asker, app(second.name), ingressPort(i.access), name, file);
    const readOnly = instances.find((x) => x.service === i.service && x.access === "read-only");
    const roWrite = readOnly
      ? (await ingressRequest(twin, asker, app(first.name), ingressPort("read-only"), readOnly.names[0], file, content)).status
      : undefined;
    const entry: WorkloadDataEntry = {
      service: i.service,
      tree,
      writtenVia: first.name,
      readVia: second.name,
      write: put.status,
      read: get.status,
      sameContent: get.body === content,
      ...(roWrite !== undefined ? { readOnlyWrite: roWrite } : {}),
      ok: put.status === 201 && get.status === 200 && get.body === content && (roWrite === undefined || roWrite === 403),
    };
    data.push(entry);
    log(
      `data ${i.service}/${tree}: PUT via ${first.name} ${put.status}, GET via ${second.name} ${get.status}${entry.sameContent ? " (same bytes)" : ` (${get.body.trim()})`}`,
    );
  }
  // A read-only instance refuses writes even where no read-write instance runs.
  for (const i of instances.filter(
    (x) => x.access === "read-only" && !instances.some((y) => y.service === x.service && y.access === "read-write"),
  )) {
    const serving = i.workload.containers.find((c) => c.port !== undefined)!;
    const tree = serving.volumes[0]?.tree;
    if (!tree) continue;
    const file = `/files/${tree}/twin-workload-${process.pid}.txt`;
    const put = await ingressRequest(twin, asker, app(first.name), ingressPort(i.access), i.names[0], file, "must not land\n");
    data.push({
      service: i.service,
      tree,
      writtenVia: first.name,
      readVia: "",
      write: put.status,
      read: 0,
      sameContent: false,
      readOnlyWrite: put.status,
      ok: put.status === 403,
    });
    log(`data ${i.project}/${tree}: PUT to the read-only instance ${put.status}`);
  }

  // Published ports: from the other segments they are closed unless a zone rule sends them here.
  const published: PublishedProbe[] = [];
  const storagePair = model.pairs.find((p) => p.role === "storage")!;
  const [store] = await twin.holders(storagePair.vips[0].address, storagePair.members);
  const askers = [asker, store ?? storagePair.active];
  const ports = [
    ...new Set(
      instances.flatMap((i) =>
        i.workload.containers.flatMap((c) =>
          c.publish.filter((p) => p.protocol === "tcp").map((p) => `${i.service}/${c.name}:${p.hostPort}`),
        ),
      ),
    ),
  ];
  for (const entry of ports) {
    const port = Number(entry.split(":")[1]);
    for (const host of virtualization) {
      const control = await twin
        .machine(host.name)
        .exec(["curl", "-s", "--max-time", "3", `telnet://127.0.0.1:${port}`], { input: "", timeoutMs: 8_000 });
      // A neighbour on the same segment reaches the host directly: only the host's own forward filter stands between.
      const neighbour = virtualization.find((h) => h.name !== host.name)?.name;
      for (const from of [...askers, ...(neighbour ? [neighbour] : [])]) {
        const [o] = await twin.probe(from, [{ id: entry, protocol: "tcp", target: app(host.name), port, timeoutMs: 1_500 }]);
        const probe: PublishedProbe = {
          id: `published-port-outside-policy:${entry} ${from}->${host.name}`,
          from,
          target: app(host.name),
          port,
          blocked: o.result === "timeout" || o.result === "unreachable",
          control: control.stdout.trim().length > 0,
        };
        published.push(probe);
        log(
          `${probe.id}: ${probe.blocked ? "blocked" : `NOT BLOCKED (${o.result} ${o.answer ?? ""})`}; from the host itself: ${probe.control ? control.stdout.trim() : "no answer"}`,
        );
      }
    }
  }
  return { workloads, data, published, ms: Math.round(performance.now() - t0) };
}
