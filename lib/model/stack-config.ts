import { StackConfig, StackConfigSchema } from "./schema";
import { InputError, formatIssues } from "./validate";

export const CONFIG_NAMESPACE = "standort";
/**
 * The outputs a location's stack reads from its peers' stacks through `pulumi.StackReference`
 * (stacks/program.ts): tunnel keys and endpoint, replication credentials, the proxy address of a
 * site whose public address the provider assigns. A rollout runs a reader again when one of these
 * changed after it ran (lib/rollout).
 */
export const PEER_OUTPUTS = ["wireguard", "tunnelEndpoint", "credentials", "proxyAddress"] as const;
export type PeerOutput = (typeof PEER_OUTPUTS)[number];

/** Keys that must be set with `pulumi config set --secret`. */
export const SECRET_CONFIG_KEYS = ["hcloudToken", "sshPrivateKey", "kubeconfig", "providerApiToken", "serviceSecrets", "alerting"] as const;

/**
 * Validates a stack's configuration. `values` is the flat engine form
 * (`standort:site` → `vienna`); keys of other namespaces (provider settings)
 * are left to their providers. Problems name the stack file and the key.
 * @param isSecret tells whether the engine holds a key as a secret. @default every key counts as secret
 */
export function parseStackConfig(
  values: Readonly<Record<string, string>>,
  stackFile: string,
  isSecret: (key: string) => boolean = () => true,
): StackConfig {
  const prefix = `${CONFIG_NAMESPACE}:`;
  const own = Object.fromEntries(
    Object.entries(values)
      .filter(([key]) => key.startsWith(prefix))
      .map(([key, value]) => [key.slice(prefix.length), value]),
  );
  // A secret committed in plain text is refused before anything else: it is already exposed, and must be rotated.
  const plain = SECRET_CONFIG_KEYS.filter((key) => key in own && !isSecret(`${prefix}${key}`));
  if (plain.length > 0) {
    throw new InputError(
      plain.map(
        (key) =>
          `${stackFile}: ${prefix}${key}: is stored in plain text: rotate it and set it with pulumi config set --secret ${prefix}${key}`,
      ),
    );
  }
  const result = StackConfigSchema.safeParse(own);
  if (!result.success) {
    throw new InputError(
      formatIssues(stackFile, result.error.issues, "the stack configuration table in README.md").map((line) =>
        line.replace(`${stackFile}: `, `${stackFile}: ${prefix}`),
      ),
    );
  }
  return result.data;
}
