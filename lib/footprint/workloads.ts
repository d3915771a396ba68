/**
 * What runs on a site's virtualization hosts for the footprint: one instance
 * of a service per access mode the site answers it in (read-write where it
 * takes writes, read-only where it answers reads only), each reached by the
 * ingress on the host through a loopback port. On compose sites every
 * instance is a Compose project on every virtualization host
 * (`/etc/standort/compose/<project>/compose.yaml`, Compose Specification,
 * checked by `docker-compose config`), started by one systemd template unit.
 * Pure: the site model, the footprint and the site's services in, files out.
 */
import { stringify } from "yaml";
import { SiteModel } from "../model/model";
import { FILE_PLACEHOLDER, RenderedFile, sshFile } from "../render/types";
import { Footprint, FootprintService, ServiceWorkload, WorkloadContainer } from "./schema";
import { SiteService } from "./services";
import { storageVip } from "./jobs";

/** Access modes of an instance: what the application is started for. */
export type Access = "read-write" | "read-only";

/** Where the rendered Compose projects live on a virtualization host. */
export const COMPOSE_DIR = "/etc/standort/compose";
/** The containers' secret environment files (`VAR=value` lines, mode 0600): `<service>/<container>.env`, read by both instances. */
export const SECRETS_DIR = "/etc/standort/secrets";
/** The systemd template unit that runs one project (`standort-compose@<project>.service`). */
export const COMPOSE_UNIT = "standort-compose@.service";
export const COMPOSE_UNIT_FILE = `/etc/systemd/system/${COMPOSE_UNIT}`;
/** Debian's docker-compose (1.29, Compose Specification): `docker-compose(1)`. */
export const DOCKER_COMPOSE = "/usr/bin/docker-compose";

/**
 * Loopback ports the instances publish for the ingress: `base + 2 × i` for
 * the read-write and `+ 1` for the read-only instance of the i-th service of
 * the footprint by name. Above the range the footprint may publish
 * (`PUBLISHED_PORT_RANGE`), below the ephemeral range (32768, `ip_local_port_range`).
 */
export const UPSTREAM_PORT_BASE = 20000;

/** The variables every container gets: which service it belongs to and whether it may write. */
export const STANDORT_ENV = { service: "STANDORT_SERVICE", access: "STANDORT_ACCESS" } as const;

/** NFS mount options of the volumes on the storage export: NFSv4.2 over TCP (one port), hard mounts (no silent loss on a takeover). */
export const NFS_MOUNT_OPTIONS = "nfsvers=4.2,proto=tcp,hard,timeo=600,retrans=2";

/** One instance of a service on a site: its Compose project (and Kubernetes Deployment) name, its names and upstream port. */
export interface WorkloadInstance {
  readonly service: string;
  readonly access: Access;
  /** `<service>` (read-write) or `<service>-ro` (read-only): the project, Deployment and ingress backend name. */
  readonly project: string;
  /** Names this instance answers (the SNI the ingress routes on), sorted. */
  readonly names: ReadonlyArray<string>;
  /** The loopback port the serving container publishes (compose) for the ingress. */
  readonly upstreamPort: number;
  readonly workload: ServiceWorkload;
}

/** The project (and backend) name of an instance. */
export function projectName(service: string, access: Access): string {
  return access === "read-write" ? service : `${service}-ro`;
}

/**
 * The instances a site runs, sorted by project: one per service and access
 * mode for which the site answers at least one name (`SiteService.names`).
 * Throws when a service of `services` is not in the footprint (a programming error).
 */
export function workloadInstances(footprint: Footprint, services: ReadonlyArray<SiteService>): WorkloadInstance[] {
  const byName = [...footprint.services].sort((a, b) => a.name.localeCompare(b.name));
  const instances: WorkloadInstance[] = [];
  for (const entry of services) {
    const index = byName.findIndex((s) => s.name === entry.service);
    if (index < 0) throw new Error(`workloadInstances: ${entry.service} is not in the footprint`);
    const service = byName[index];
    const writable = entry.names.filter((n) => n.writes).map((n) => n.name);
    const readOnly = entry.names.filter((n) => n.reads && !n.writes).map((n) => n.name);
    const add = (access: Access, names: string[], offset: number) =>
      instances.push({
        service: service.name,
        access,
        project: projectName(service.name, access),
        names: [...names].sort(),
        upstreamPort: UPSTREAM_PORT_BASE + 2 * index + offset,
        workload: service.workload,
      });
    if (writable.length > 0) add("read-write", writable, 0);
    if (readOnly.length > 0) add("read-only", readOnly, 1);
  }
  return instances.sort((a, b) => a.project.localeCompare(b.project));
}

/** The environment of a container in an instance: the standard variables, the footprint's, and the read-only overrides. */
export function containerEnvironment(instance: WorkloadInstance, container: WorkloadContainer): Record<string, string> {
  return {
    [STANDORT_ENV.service]: instance.service,
    [STANDORT_ENV.access]: instance.access,
    ...container.environment,
    ...(instance.access === "read-only" ? instance.workload.readOnly.environment : {}),
  };
}

/** The secret environment file of one container of a service on its virtualization hosts: each container gets only its own secrets. */
export function secretsFile(service: string, container: string): string {
  return `${SECRETS_DIR}/${service}/${container}.env`;
}

/** A value as Compose reads it literally: `$` starts an interpolation in the file, `$$` is one `$` (Compose Specification, "Interpolation"). */
function literal(value: string): string {
  return value.replace(/\$/g, "$$$$");
}

/**
 * The Compose file of an instance. The serving container publishes its port
 * on loopback only (the ingress on the same host is its one client); the
 * footprint's `publish` ports on every address, where the host's forward
 * filter admits only what the zone policy sends to the virtualization hosts.
 * Volumes are NFS mounts of the trees from the storage VIP, read-only in the
 * read-only instance (the standby's trees belong to replication).
 */
export function renderComposeProject(model: SiteModel, instance: WorkloadInstance, service: FootprintService): string {
  const server = storageVip(model);
  const readOnly = instance.access === "read-only";
  const services: Record<string, unknown> = {};
  const trees = new Set<string>();
  for (const c of instance.workload.containers) {
    const ports = [
      ...(c.port !== undefined ? [`127.0.0.1:${instance.upstreamPort}:${c.port}`] : []),
      ...c.publish.map((p) => `${p.hostPort}:${p.port}/${p.protocol}`),
    ];
    c.volumes.forEach((v) => trees.add(v.tree));
    services[c.name] = {
      image: c.image,
      ...(c.command ? { command: c.command.map(literal) } : {}),
      restart: "unless-stopped",
      environment: Object.fromEntries(Object.entries(containerEnvironment(instance, c)).map(([k, v]) => [k, literal(v)])),
      ...(Object.keys(c.secrets).length > 0 ? { env_file: [secretsFile(instance.service, c.name)] } : {}),
      ...(ports.length > 0 ? { ports } : {}),
      ...(c.volumes.length > 0
        ? { volumes: c.volumes.map((v) => ({ type: "volume", source: v.tree, target: v.mount, read_only: readOnly })) }
        : {}),
    };
  }
  const volumes: Record<string, unknown> = {};
  for (const tree of [...trees].sort()) {
    const path = service.data.files.find((f) => f.name === tree)!.path;
    volumes[tree] = {
      driver: "local",
      driver_opts: { type: "nfs", o: `addr=${server},${NFS_MOUNT_OPTIONS},${readOnly ? "ro" : "rw"}`, device: `:${path}` },
    };
  }
  const header = [
    `# standort: ${instance.project} (${instance.access} instance of ${instance.service}) on ${model.name}. Rendered from sites/footprint.yaml; do not edit.`,
    `# Answers: ${instance.names.join(", ")} through the ingress (loopback ${instance.upstreamPort}).`,
  ];
  return `${header.join("\n")}\n${stringify({ services, ...(Object.keys(volumes).length > 0 ? { volumes } : {}) }, { lineWidth: 0 })}`;
}

/** The template unit: `up -d` is idempotent (only changed containers are recreated), so a restart applies a new file. */
export function renderComposeUnit(): string {
  const file = `${COMPOSE_DIR}/%i/compose.yaml`;
  return [
    "# standort: one Compose project of the footprint per instance (standort-compose@<project>). Rendered; do not edit.",
    "[Unit]",
    "Description=standort workload %i (docker-compose)",
    "Requires=docker.service",
    "After=docker.service network-online.target",
    "Wants=network-online.target",
    "",
    "[Service]",
    "Type=oneshot",
    "RemainAfterExit=yes",
    `ExecStart=${DOCKER_COMPOSE} -p %i -f ${file} up -d --remove-orphans`,
    `ExecStop=${DOCKER_COMPOSE} -p %i -f ${file} down`,
    "TimeoutStartSec=600",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

/** A placeholder that names where a service secret comes from: the plan never holds its value. */
export function serviceSecretPlaceholder(service: string, secret: string): string {
  return `(secret from standort:serviceSecrets.${service}.${secret})`;
}

/** The secret names a service's containers read, sorted. */
export function serviceSecretNames(workload: ServiceWorkload): string[] {
  return [...new Set(workload.containers.flatMap((c) => Object.values(c.secrets)))].sort();
}

/**
 * The secret environment file of one container (`VAR=value` lines, the format of
 * Compose's `env_file`): every variable it fills from a secret. `values` maps
 * secret names to values; a missing one throws (the stack checks its
 * configuration before rendering).
 */
export function renderSecretsEnv(service: string, container: WorkloadContainer, values: Readonly<Record<string, string>>): string {
  return Object.keys(container.secrets)
    .sort()
    .map((variable) => {
      const secret = container.secrets[variable];
      const value = values[secret];
      if (value === undefined) throw new Error(`renderSecretsEnv: ${service}/${container.name} has no value for secret ${secret}`);
      if (/[\n\r\0]/.test(value))
        throw new Error(`renderSecretsEnv: ${service}'s secret ${secret} spans lines (env files hold one line per variable)`);
      return `${variable}=${value}`;
    })
    .join("\n")
    .concat("\n");
}

/**
 * `docker-compose config` of a staged project. It refuses a missing `env_file`, which the first delivery
 * stages beside this file: the check reads the file with the secret files replaced by empty ones.
 */
const COMPOSE_CHECK = [
  "d=$(mktemp -d) && trap 'rm -rf \"$d\"' EXIT",
  `sed "s#${SECRETS_DIR}/#$d/#g" "$1" > "$d/compose.yaml"`,
  `for f in $(sed -n "s#.*$d/\\([a-z0-9/-]*\\.env\\).*#\\1#p" "$d/compose.yaml"); do mkdir -p "$(dirname "$d/$f")" && : > "$d/$f"; done`,
  `${DOCKER_COMPOSE} -f "$d/compose.yaml" config -q`,
].join(" && ");

/**
 * The workload files of a compose site's virtualization host, in delivery
 * order: the template unit, then each instance's project (checked by
 * `docker-compose config`, started by enabling its unit). Every
 * virtualization host runs every instance. Empty on Kubernetes sites (the
 * cluster runs them) and where the site runs no instance.
 */
export function composeHostFiles(model: SiteModel, footprint: Footprint, instances: ReadonlyArray<WorkloadInstance>): RenderedFile[] {
  if (model.virtualization.runtime !== "compose" || instances.length === 0) return [];
  const services = new Map(footprint.services.map((s) => [s.name, s]));
  return [
    sshFile(COMPOSE_UNIT_FILE, renderComposeUnit(), { reload: ["systemctl", "daemon-reload"] }),
    ...instances.map((i) => {
      const unit = `standort-compose@${i.project}.service`;
      const path = `${COMPOSE_DIR}/${i.project}/compose.yaml`;
      return sshFile(path, renderComposeProject(model, i, services.get(i.service)!), {
        check: { command: ["sh", "-c", COMPOSE_CHECK, "compose-check", FILE_PLACEHOLDER] },
        reload: ["sh", "-c", `systemctl enable --quiet ${unit} && systemctl restart ${unit}`],
        healthCheck: ["sh", "-c", `[ -z "$(${DOCKER_COMPOSE} -p ${i.project} -f ${path} ps --services --filter status=stopped)" ]`],
        // An instance that left the site (promotion, migration, a service removed) stops before its file goes.
        remove: ["sh", "-c", `systemctl disable --now --quiet ${unit}; true`],
      });
    }),
  ];
}

/**
 * The secret environment files of the services a site runs (compose sites:
 * on every virtualization host; Kubernetes sites hold them as Secrets).
 * `valueOf(service, secret)` gives a value or a placeholder.
 */
export function serviceSecretFiles(
  model: SiteModel,
  instances: ReadonlyArray<WorkloadInstance>,
  valueOf: (service: string, secret: string) => string,
): RenderedFile[] {
  if (model.virtualization.runtime !== "compose") return [];
  const seen = new Map<string, ServiceWorkload>();
  for (const i of instances) seen.set(i.service, i.workload);
  return [...seen.entries()].flatMap(([service, w]) =>
    w.containers
      .filter((c) => Object.keys(c.secrets).length > 0)
      .map((c) => ({
        path: secretsFile(service, c.name),
        content: renderSecretsEnv(service, c, Object.fromEntries(Object.values(c.secrets).map((name) => [name, valueOf(service, name)]))),
        mode: "0600",
        secret: true,
        delivery: "ssh" as const,
      })),
  );
}
