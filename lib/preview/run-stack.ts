/**
 * Runs the real stack program of a location under the mock runtime, with the
 * stack's committed configuration. Secrets cannot be decrypted offline: every
 * secret key is given a placeholder that is itself a secret, so the plan shows
 * `[secret]` exactly where `pulumi preview` would.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { REPOSITORY_ROOT, readYaml } from "../model/load";
import { CONFIG_NAMESPACE, SECRET_CONFIG_KEYS, parseStackConfig } from "../model/stack-config";
import type { StackConfig } from "../model/schema";
import { InputError } from "../model/validate";
import { PLACEHOLDER_SSH_KEY } from "../render";
import { locationStack } from "../../stacks/program";
import { loadFootprint } from "../footprint/load";
import { serviceSecretNames } from "../footprint/workloads";
import { MockRunResult, runUnderMocks } from "./harness";

export const STACKS_DIR = join(REPOSITORY_ROOT, "stacks");
export const OFFLINE_PLACEHOLDER = "offline-plan-placeholder";

/** The key of the services' secrets: a JSON mapping, so its offline stand-in must be one. */
const SERVICE_SECRETS_KEY = `${CONFIG_NAMESPACE}:serviceSecrets`;
/** The alert receiver: a JSON object, so its offline stand-in must be a valid one (nothing is sent by a plan). */
const ALERTING_KEY = `${CONFIG_NAMESPACE}:alerting`;
export const OFFLINE_ALERTING = { kind: "webhook", url: `https://${OFFLINE_PLACEHOLDER}.invalid/alerts` } as const;
const offlinePlaceholder = (key: string) =>
  key === SERVICE_SECRETS_KEY ? "{}" : key === ALERTING_KEY ? JSON.stringify(OFFLINE_ALERTING) : OFFLINE_PLACEHOLDER;

/**
 * Every service secret of the footprint with the offline placeholder as its value: the plan renders every
 * secret file with it (the values are secrets the offline plan cannot decrypt).
 */
function offlineServiceSecrets(sitesDir?: string): string {
  const { footprint } = loadFootprint(sitesDir);
  return JSON.stringify(
    Object.fromEntries(
      footprint.services.map((s) => [s.name, Object.fromEntries(serviceSecretNames(s.workload).map((n) => [n, OFFLINE_PLACEHOLDER]))]),
    ),
  );
}

/** A Pulumi configuration key: `<namespace>:<name>`. */
const CONFIG_KEY = /^[^:\s]+:\S+$/;

/**
 * Reads `stacks/Pulumi.<stack>.yaml` into the engine's flat form and the list of secret keys.
 * The file goes through the reader every input file goes through (`readYaml`); then `config`
 * must be a mapping of `<namespace>:<name>` keys, a secret one holding its ciphertext.
 * @throws InputError naming the stack file, the key and the rule
 */
export function readStackConfig(stack: string, stacksDir: string = STACKS_DIR): { config: Record<string, string>; secretKeys: string[] } {
  const display = `stacks/Pulumi.${stack}.yaml`;
  const path = join(stacksDir, `Pulumi.${stack}.yaml`);
  if (!existsSync(path))
    throw new InputError([`${display}: does not exist: create it with "standort:site: ${stack}" (see README, adding a location)`]);
  const read = readYaml(path, display);
  if (!read.data) throw new InputError(read.problems);
  const entries = read.data.config ?? {};
  if (typeof entries !== "object" || Array.isArray(entries)) {
    throw new InputError([
      `${display}: config: expected a mapping of <namespace>:<name> settings, got ${Array.isArray(entries) ? "a list" : JSON.stringify(entries)}`,
    ]);
  }
  const problems: string[] = [];
  const config: Record<string, string> = {};
  const secretKeys: string[] = [];
  for (const [key, value] of Object.entries(entries)) {
    if (!CONFIG_KEY.test(key)) {
      problems.push(`${display}: ${key}: a configuration key is <namespace>:<name>: write ${CONFIG_NAMESPACE}:${key.replace(/^:/, "")}`);
    } else if (value && typeof value === "object" && "secure" in value) {
      if (typeof value.secure !== "string" || value.secure === "")
        problems.push(`${display}: ${key}: secure must hold the ciphertext pulumi config set --secret ${key} writes`);
      config[key] = offlinePlaceholder(key);
      secretKeys.push(key);
    } else {
      config[key] = typeof value === "string" ? value : JSON.stringify(value);
    }
  }
  if (problems.length > 0) throw new InputError(problems);
  for (const key of SECRET_CONFIG_KEYS) {
    const full = `${CONFIG_NAMESPACE}:${key}`;
    if (!(full in config)) {
      config[full] = offlinePlaceholder(full);
      secretKeys.push(full);
    }
  }
  if (!(`${CONFIG_NAMESPACE}:sshPublicKey` in config)) config[`${CONFIG_NAMESPACE}:sshPublicKey`] = PLACEHOLDER_SSH_KEY;
  return { config, secretKeys: secretKeys.sort() };
}

/**
 * The stack's configuration as the stack program validates it (secrets as placeholders).
 * @throws InputError naming the stack file, the key and the rule
 */
export function stackConfigOf(stack: string, stacksDir: string = STACKS_DIR): StackConfig {
  const { config, secretKeys } = readStackConfig(stack, stacksDir);
  return parseStackConfig(config, `stacks/Pulumi.${stack}.yaml`, (key) => secretKeys.includes(key));
}

/**
 * The stack's non-secret provider environment (`standort:providerEnv`):
 * what the stack hands the failover scripts, so offline renders carry the same file.
 */
export function stackProviderEnv(stack: string, stacksDir: string = STACKS_DIR): Readonly<Record<string, string>> | undefined {
  return stackConfigOf(stack, stacksDir).providerEnv;
}

/** The offline preview of one location stack. */
export async function planStack(
  stack: string,
  options: { sitesDir?: string; stacksDir?: string; onRegister?: (type: string, name: string) => void } = {},
): Promise<MockRunResult> {
  const { config, secretKeys } = readStackConfig(stack, options.stacksDir);
  config[SERVICE_SECRETS_KEY] = offlineServiceSecrets(options.sitesDir);
  return runUnderMocks({
    stack,
    config,
    secretKeys,
    onRegister: options.onRegister,
    program: () => locationStack({ sitesDir: options.sitesDir }),
  });
}
