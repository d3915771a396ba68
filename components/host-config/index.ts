/**
 * Delivers a host's rendered files over SSH, one `remote.Command` per file:
 * the content goes in on stdin to a staging path, and the apply script
 * checks it with the daemon's own test, swaps it in atomically, reloads,
 * health-checks and rolls back on failure (lib/deliver/apply.sh). A file
 * that can cut off the deployer (the packet filter) is confirmed by a second
 * command over a fresh connection, or the host restores the old file itself.
 *
 * Files are applied one after another in the order given (renderHostFiles
 * orders them: interfaces before keepalived, the failover script before
 * keepalived), and a failed file stops the ones after it.
 */
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import {
  APPLY_SCRIPT,
  applyCommand,
  confirmCommand,
  contentHash,
  installApplyScriptCommand,
  pathSlug,
  removeCommand,
} from "../../lib/deliver";
import type { SiteModel } from "../../lib/model/model";
import { placeholderSecrets, renderHostFiles } from "../../lib/render";
import type { RenderedFile, RenderOptions, RenderSecrets } from "../../lib/render/types";

/** A rendered file whose content may still be unknown (it holds a secret that resolves at deployment). */
export interface DeliverableFile extends Omit<RenderedFile, "content"> {
  readonly content: pulumi.Input<string>;
}

export interface HostConfigArgs {
  /** The host the files belong to (for messages). */
  readonly hostName: string;
  /** How to reach the host: always as root, with a private key that stays secret. */
  readonly connection: {
    readonly host: pulumi.Input<string>;
    readonly privateKey: pulumi.Input<string>;
    /** @default 22 */
    readonly port?: pulumi.Input<number>;
  };
  /** The host's files in delivery order; files with `delivery: "provision"` (cloud-init) are not shipped. */
  readonly files: ReadonlyArray<RenderedFile | DeliverableFile>;
  /** Resources the first delivery waits for (for example the other member of the pair, so members change one at a time). */
  readonly after?: ReadonlyArray<pulumi.Resource>;
}

export class HostConfig extends pulumi.ComponentResource {
  public readonly hostName: string;
  /** Installs the apply script every file's command runs. */
  public readonly applyScript: command.remote.Command;
  /** The delivering command of each shipped file, by target path. */
  public readonly commands: Readonly<Record<string, command.remote.Command>>;
  /** The confirming command of each file that needs one, by target path. */
  public readonly confirmations: Readonly<Record<string, command.remote.Command>>;
  /** Target paths shipped, in delivery order. */
  public readonly paths: ReadonlyArray<string>;
  /** The last command: depend on it to run after this host is fully configured. */
  public readonly done: pulumi.Resource | undefined;

  constructor(name: string, args: HostConfigArgs, opts?: pulumi.ComponentResourceOptions) {
    super("standort:hosts:HostConfig", name, {}, opts);
    this.hostName = args.hostName;
    const shipped = args.files.filter((f) => f.delivery === "ssh");
    const slugs = new Map<string, string>();
    for (const file of shipped) {
      const slug = pathSlug(file.path);
      const other = slugs.get(slug);
      if (other !== undefined) throw new Error(`${args.hostName}: ${file.path} and ${other} would share the resource key ${name}-${slug}`);
      slugs.set(slug, file.path);
    }

    const connection = {
      host: args.connection.host,
      user: "root",
      port: args.connection.port,
      privateKey: pulumi.secret(args.connection.privateKey),
    };
    const commands: Record<string, command.remote.Command> = {};
    const confirmations: Record<string, command.remote.Command> = {};
    // The apply script goes on the host once, before any file; a new version of it re-runs this command only.
    this.applyScript = new command.remote.Command(
      `${name}-apply-script`,
      { connection, create: installApplyScriptCommand(), triggers: [contentHash(APPLY_SCRIPT)] },
      { parent: this, dependsOn: [...(args.after ?? [])] },
    );
    let previous: pulumi.Resource[] = [this.applyScript];
    for (const file of shipped) {
      const slug = pathSlug(file.path);
      const { content, ...spec } = file;
      const hash = pulumi.output(content).apply(contentHash);
      // A hash of a short secret in a known template could be brute-forced: it stays secret too.
      const trigger = file.secret ? pulumi.secret(hash) : hash;
      const apply = new command.remote.Command(
        `${name}-${slug}`,
        {
          connection,
          create: applyCommand(spec),
          delete: removeCommand(spec),
          stdin: file.secret ? pulumi.secret(content) : content,
          triggers: [trigger],
        },
        { parent: this, dependsOn: previous },
      );
      commands[file.path] = apply;
      previous = [apply];
      if (file.confirmWithinSeconds !== undefined) {
        const confirm = new command.remote.Command(
          `${name}-${slug}-confirm`,
          { connection, create: confirmCommand(file), triggers: [trigger] },
          { parent: this, dependsOn: [apply] },
        );
        confirmations[file.path] = confirm;
        previous = [confirm];
      }
    }
    this.commands = commands;
    this.confirmations = confirmations;
    this.paths = shipped.map((f) => f.path);
    this.done = previous.length > 0 && shipped.length > 0 ? previous[0] : undefined;
    this.registerOutputs({
      hostName: this.hostName,
      applyScript: this.applyScript,
      paths: this.paths,
      commands: this.commands,
      confirmations: this.confirmations,
      done: this.done,
    });
  }
}

/**
 * A host's files for `HostConfig` when the secrets are still Outputs: the
 * list and every file without a secret come from a render with placeholder
 * secrets (known at preview, so diffs show), and the secret files' contents
 * come from a render with the real secrets, marked secret. Fails the
 * deployment if the real secrets would render a different set of files.
 */
export function deliverableFiles(
  model: SiteModel,
  hostName: string,
  secrets: pulumi.Input<RenderSecrets>,
  options: RenderOptions = {},
): DeliverableFile[] {
  const shape = renderHostFiles(model, hostName, placeholderSecrets(model), options);
  const real = pulumi.output(secrets).apply((s) => {
    const files = renderHostFiles(model, hostName, s, options);
    const want = shape.map((f) => f.path).join(", ");
    const got = files.map((f) => f.path).join(", ");
    if (want !== got)
      throw new Error(
        `${model.name}: ${hostName}: the secrets render files ${got}, not ${want}: pass every secret placeholderSecrets names`,
      );
    return files;
  });
  return shape.map((file, i) => (file.secret ? { ...file, content: pulumi.secret(real.apply((r) => r[i].content)) } : file));
}
