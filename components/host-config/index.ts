/**
 * Delivers a host's rendered files over SSH as one transaction: one
 * `remote.Command` per host whose stdin is the host's whole bundle
 * (lib/deliver/bundle format), applied by apply.sh on the host: every file
 * staged and checked with its daemon's own test, all swapped together,
 * reloaded in the bundle's order, health-checked, and all rolled back if any
 * step fails. A bundle that changes the packet filter is confirmed by a second
 * command over a fresh connection, or the host rolls the whole transaction
 * back by itself.
 *
 * The command's `triggers` list every file (path and content, a secret file
 * by the hash of its content, kept secret), so the plan's diff names each
 * changed file and line. No delete command: a replaced command has nothing to
 * undo, and files a host no longer gets are removed by the next transaction.
 */
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { bundleText, confirmCommand, contentHash, transactionCommand } from "../../lib/deliver";
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
  /** The host's files in reload order; files with `delivery: "provision"` (cloud-init) are not shipped. */
  readonly files: ReadonlyArray<RenderedFile | DeliverableFile>;
  /** Resources the transaction waits for (the other member of the pair, so members change one at a time). */
  readonly after?: ReadonlyArray<pulumi.Resource>;
}

export class HostConfig extends pulumi.ComponentResource {
  public readonly hostName: string;
  /** The host's transaction. */
  public readonly transaction: command.remote.Command;
  /** The confirming command, where the bundle holds a file that must be confirmed (the packet filter). */
  public readonly confirmation: command.remote.Command | undefined;
  /** Target paths shipped, in reload order. */
  public readonly paths: ReadonlyArray<string>;
  /** The last command: depend on it to run after this host is fully configured. */
  public readonly done: pulumi.Resource;

  constructor(name: string, args: HostConfigArgs, opts?: pulumi.ComponentResourceOptions) {
    super("standort:hosts:HostConfig", name, {}, opts);
    this.hostName = args.hostName;
    const shipped = args.files.filter((f) => f.delivery === "ssh");
    const paths = new Set<string>();
    for (const file of shipped) {
      if (paths.has(file.path)) throw new Error(`${args.hostName}: ${file.path} is delivered twice`);
      paths.add(file.path);
    }
    const connection = {
      host: args.connection.host,
      user: "root",
      port: args.connection.port,
      privateKey: pulumi.secret(args.connection.privateKey),
    };
    const anySecret = shipped.some((f) => f.secret);
    const bundle = pulumi
      .all(shipped.map((f) => f.content))
      .apply((contents) => bundleText(shipped.map((f, i) => ({ ...f, content: contents[i] }))));
    // A hash of a short secret in a known template could be brute-forced: hashes of secret content stay secret.
    const hash = bundle.apply(contentHash);
    const bundleHash = anySecret ? pulumi.secret(hash) : hash;
    // By path, so the plan's diff names each changed file (`triggers[1]./etc/nftables.conf`) and its lines.
    const listing = Object.fromEntries(
      shipped.map((f) => {
        const content = pulumi.output(f.content);
        return [f.path, f.secret ? pulumi.secret(content.apply(contentHash)) : content];
      }),
    );
    this.transaction = new command.remote.Command(
      `${name}-tx`,
      {
        connection,
        create: transactionCommand(),
        stdin: anySecret ? pulumi.secret(bundle) : bundle,
        triggers: [bundleHash, listing],
      },
      { parent: this, dependsOn: [...(args.after ?? [])] },
    );
    const confirms = shipped.some((f) => f.confirmWithinSeconds !== undefined);
    this.confirmation = confirms
      ? new command.remote.Command(
          `${name}-confirm`,
          { connection, create: confirmCommand(), triggers: [bundleHash] },
          { parent: this, dependsOn: [this.transaction] },
        )
      : undefined;
    this.paths = shipped.map((f) => f.path);
    this.done = this.confirmation ?? this.transaction;
    this.registerOutputs({
      hostName: this.hostName,
      transaction: this.transaction,
      confirmation: this.confirmation,
      paths: this.paths,
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
