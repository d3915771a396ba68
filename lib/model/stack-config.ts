import { StackConfig, StackConfigSchema } from "./schema";
import { InputError, formatIssues } from "./validate";

export const CONFIG_NAMESPACE = "standort";
/** Keys that must be set with `pulumi config set --secret`. */
export const SECRET_CONFIG_KEYS = ["hcloudToken", "sshPrivateKey", "kubeconfig", "providerApiToken"] as const;

/**
 * Validates a stack's configuration. `values` is the flat engine form
 * (`standort:site` → `vienna`); keys of other namespaces (provider settings)
 * are left to their providers. Problems name the stack file and the key.
 */
export function parseStackConfig(values: Readonly<Record<string, string>>, stackFile: string): StackConfig {
  const prefix = `${CONFIG_NAMESPACE}:`;
  const own = Object.fromEntries(
    Object.entries(values)
      .filter(([key]) => key.startsWith(prefix))
      .map(([key, value]) => [key.slice(prefix.length), value]),
  );
  const result = StackConfigSchema.safeParse(own);
  if (!result.success) {
    throw new InputError(
      formatIssues(stackFile, result.error.issues).map((line) => line.replace(`${stackFile}: `, `${stackFile}: ${prefix}`)),
    );
  }
  return result.data;
}
