import * as pulumi from "@pulumi/pulumi";
import * as kubernetes from "@pulumi/kubernetes";
import { BackupJob, DEFAULT_JOB_IMAGES, JobImages, PlannedJob, cronJobManifest, cronSchedule, isPeriodic } from "../../lib/footprint/jobs";

export interface ReplicationArgs {
  /**
   * Kubeconfig of the site's cluster. Pass the stack secret
   * (`new pulumi.Config("standort").requireSecret("kubeconfig")`); the
   * component marks it secret again so a plain string never reaches the state.
   */
  readonly kubeconfig: pulumi.Input<string>;
  /**
   * The jobs the site runs (`siteJobs` or the `jobs` of `siteServices`). Every
   * backup becomes a CronJob; file copies run on the storage hosts (their
   * units come with the host files) and database replication is continuous
   * and applied by the service deployment, so both are skipped here.
   */
  readonly jobs: ReadonlyArray<PlannedJob>;
  /** Namespace the CronJobs live in; the component creates it. @default "standort-replication" */
  readonly namespace?: string;
  /** Container images, pinned per stack. @default DEFAULT_JOB_IMAGES */
  readonly images?: Partial<JobImages>;
  /**
   * The Secrets the backup CronJobs mount (`JOB_SECRETS`), from the stack's generated
   * credentials (`ReplicationCredentials.secretNames` / `.kubernetesSecrets`):
   * `names` known at preview, `data` (name → key → content) secret.
   * @default no Secrets: the CronJobs wait for Secrets created elsewhere
   */
  readonly secrets?: { readonly names: ReadonlyArray<string>; readonly data: pulumi.Input<Record<string, Record<string, string>>> };
}

/**
 * Backup CronJobs of one Kubernetes site: backups into the stores, and the
 * Secrets they mount (`JOB_SECRETS`, from `ReplicationCredentials`). Its file
 * copies run on the storage hosts as at every site (`jobRunner`).
 * Children are named `<name>-<job key>`, so adding or removing a service never
 * renames another's CronJob.
 */
export class Replication extends pulumi.ComponentResource {
  /** The provider talking to the site's cluster. */
  public readonly provider: kubernetes.Provider;
  public readonly namespace: kubernetes.core.v1.Namespace;
  /** CronJobs by job key. */
  public readonly cronJobs: Readonly<Record<string, kubernetes.batch.v1.CronJob>>;
  /** Cron schedule (UTC) by job key, as planned. */
  public readonly schedules: Readonly<Record<string, string>>;
  /** The Secrets the CronJobs mount, by Secret name. */
  public readonly secrets: Readonly<Record<string, kubernetes.core.v1.Secret>>;

  constructor(name: string, args: ReplicationArgs, opts?: pulumi.ComponentResourceOptions) {
    super("standort:footprint:Replication", name, {}, opts);
    // Both are programming errors of the caller, caught before any resource exists: a backup not run by Kubernetes
    // (another site's jobs), or a file copy that is (jobRunner never plans one).
    const misplaced = args.jobs.filter(isPeriodic).find((j) => j.runner !== (j.kind === "backup" ? "kubernetes" : "systemd"));
    if (misplaced)
      throw new Error(`Replication runs Kubernetes backups only: ${misplaced.key} runs under ${misplaced.runner} at ${misplaced.site}`);
    const periodic = args.jobs.filter((j): j is BackupJob => j.kind === "backup").sort((a, b) => a.key.localeCompare(b.key));
    const keys = new Set<string>();
    for (const job of periodic) {
      if (keys.has(job.key)) throw new Error(`Replication: job key ${job.key} appears twice`);
      keys.add(job.key);
    }

    const images: JobImages = { ...DEFAULT_JOB_IMAGES, ...args.images };
    const namespaceName = args.namespace ?? "standort-replication";

    this.provider = new kubernetes.Provider(`${name}-provider`, { kubeconfig: pulumi.secret(args.kubeconfig) }, { parent: this });
    this.namespace = new kubernetes.core.v1.Namespace(
      `${name}-namespace`,
      { metadata: { name: namespaceName, labels: { "app.kubernetes.io/managed-by": "standort" } } },
      { parent: this, provider: this.provider },
    );

    const secrets: Record<string, kubernetes.core.v1.Secret> = {};
    for (const secretName of [...(args.secrets?.names ?? [])].sort()) {
      const data = pulumi.output(args.secrets!.data);
      secrets[secretName] = new kubernetes.core.v1.Secret(
        `${name}-secret-${secretName}`,
        {
          metadata: { name: secretName, namespace: this.namespace.metadata.name, labels: { "app.kubernetes.io/managed-by": "standort" } },
          type: "Opaque",
          // Secret as a whole: the provider stores stringData encrypted in the state and never shows it in a diff.
          stringData: pulumi.secret(
            data.apply((d) => {
              const entry = d[secretName];
              if (!entry) throw new Error(`${name}: no data for the Secret ${secretName}`);
              return entry;
            }),
          ),
        },
        { parent: this, provider: this.provider },
      );
    }

    const cronJobs: Record<string, kubernetes.batch.v1.CronJob> = {};
    const schedules: Record<string, string> = {};
    for (const job of periodic) {
      const manifest = cronJobManifest(job, namespaceName, images);
      cronJobs[job.key] = new kubernetes.batch.v1.CronJob(
        `${name}-${job.key}`,
        {
          // The namespace output (not the plain name) orders the CronJob after its namespace.
          metadata: { ...manifest.metadata, namespace: this.namespace.metadata.name },
          // The pure renderer builds plain JSON in the shape of a CronJobSpec; it may not import the SDK types.
          spec: manifest.spec as unknown as kubernetes.types.input.batch.v1.CronJobSpec,
        },
        // A run that starts before its Secret exists fails; the first runs wait for them.
        { parent: this, provider: this.provider, dependsOn: Object.values(secrets) },
      );
      schedules[job.key] = cronSchedule(job);
    }
    this.cronJobs = cronJobs;
    this.schedules = schedules;
    this.secrets = secrets;
    this.registerOutputs({
      provider: this.provider,
      namespace: this.namespace,
      cronJobs: this.cronJobs,
      schedules: this.schedules,
      secrets: this.secrets,
    });
  }
}
