/**
 * What one site's monitoring watches: the shape every monitoring renderer
 * reads (Prometheus scrape configuration, alert rules, their unit tests,
 * Alertmanager). Built once from the site model and the footprint
 * (`monitoringPlan`, lib/monitoring/site-plan.ts); the renderers trust it.
 *
 * The metric names below are the contract between the hosts that write them
 * (node exporter's textfile collector, fed by the rendered jobs and scripts)
 * and the rules that read them: one place names them.
 */

/** node exporter's textfile collector folder (Debian's `prometheus-node-exporter` default, /etc/default/prometheus-node-exporter). */
export const TEXTFILE_DIR = "/var/lib/prometheus/node-exporter";

/** Metrics the site's own programs write for the textfile collector (all gauges). */
export const METRICS = {
  /** Unix time (s) of a job's last successful run. Label: `job` (systemd unit without `.service`); kind and service come from the rules. */
  jobLastSuccess: "standort_job_last_success_timestamp_seconds",
  /** Unix time (s) of a job's last failed run (written by the unit `OnFailure=` starts). Label: `job`. */
  jobLastFailure: "standort_job_last_failure_timestamp_seconds",
  /** 1 while this host is the active (VRRP MASTER) member of its pair, else 0. Labels: `pair` (the pair's role). */
  vrrpMaster: "standort_vrrp_master",
  /** Unix time (s) of the last WireGuard handshake with a peer, 0 if none yet. Labels: `interface`, `peer` (site name). */
  wireguardHandshake: "standort_wireguard_latest_handshake_timestamp_seconds",
  /** Unix time (s) a certificate expires (notAfter). Labels: `path`. */
  certificateExpiry: "standort_certificate_expiry_timestamp_seconds",
} as const;

/** What a job does: which alert its staleness raises. */
export type JobKind = "replication" | "backup";

/** One scrape target: a host's mgmt address and the port of an exporter on it. */
export interface ScrapeTarget {
  readonly host: string;
  /** `address:port`. */
  readonly target: string;
}

/** A job whose last success the rules watch. */
export interface WatchedJob {
  /** The systemd unit name without `.service` (the `job` label). */
  readonly job: string;
  readonly kind: JobKind;
  /** The footprint service it serves. */
  readonly service: string;
  /** The host that runs it (a storage pair runs it on its active member only: both are listed, the freshest counts). */
  readonly hosts: ReadonlyArray<string>;
  /** Older than this the alert fires: the service's `rpoMinutes` × 60 for replication, 26 h for backups. */
  readonly maxAgeSeconds: number;
}

/** A keepalived pair: exactly one member must be active. */
export interface WatchedPair {
  /** The pair's role (`firewall`, `proxy`, `storage`): the `pair` label. */
  readonly pair: string;
  readonly members: ReadonlyArray<string>;
}

/** A BGP session of the site's routers (BIRD protocol name as `birdc show protocols` prints it). */
export interface WatchedBgpSession {
  readonly host: string;
  readonly protocol: string;
}

/** A WireGuard tunnel end on a firewall. */
export interface WatchedTunnel {
  readonly host: string;
  readonly interface: string;
  /** The peer site. */
  readonly peer: string;
}

/** Where Alertmanager sends notifications: the stack config's `standort:alerting` (validated there). */
export type AlertReceiver =
  | {
      readonly kind: "email";
      readonly to: string;
      readonly from: string;
      readonly smarthost: string;
      /** SMTP login at the relay (most relays on 587 require one). */
      readonly username?: string;
      readonly password?: string;
    }
  | { readonly kind: "webhook"; readonly url: string };

export interface MonitoringPlan {
  readonly site: string;
  /** The hosts running Prometheus and Alertmanager (both members of the storage pair), with their mgmt addresses. */
  readonly servers: ReadonlyArray<{ readonly host: string; readonly address: string }>;
  /** Seconds between scrapes and between rule evaluations. */
  readonly scrapeIntervalSeconds: number;
  readonly targets: {
    /** node exporter on every host. */
    readonly node: ReadonlyArray<ScrapeTarget>;
    /** HAProxy's built-in exporter on the proxies. */
    readonly haproxy: ReadonlyArray<ScrapeTarget>;
    /** bird_exporter on the hosts running BIRD with BGP sessions. */
    readonly bird: ReadonlyArray<ScrapeTarget>;
  };
  readonly jobs: ReadonlyArray<WatchedJob>;
  readonly pairs: ReadonlyArray<WatchedPair>;
  readonly bgpSessions: ReadonlyArray<WatchedBgpSession>;
  readonly tunnels: ReadonlyArray<WatchedTunnel>;
  /** Certificates warn this many days before notAfter. */
  readonly certificateWarningDays: number;
}
