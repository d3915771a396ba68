/**
 * Runs the real stack program of a location under the mock runtime, with the
 * stack's committed configuration. Secrets cannot be decrypted offline: every
 * secret key is given a placeholder that is itself a secret, so the plan shows
 * `[secret]` exactly where `pulumi preview` would.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { REPOSITORY_ROOT } from "../model/load";
import { CONFIG_NAMESPACE, SECRET_CONFIG_KEYS, parseStackConfig } from "../model/stack-config";
import { InputError } from "../model/validate";
import { PLACEHOLDER_SSH_KEY } from "../render";
import { locationStack } from "../../stacks/program";
import { MockRunResult, runUnderMocks } from "./harness";

export const STACKS_DIR = join(REPOSITORY_ROOT, "stacks");
export const OFFLINE_PLACEHOLDER = "offline-plan-placeholder";

/** Reads `stacks/Pulumi.<stack>.yaml` into the engine's flat form and the list of secret keys. */
export function readStackConfig(stack: string, stacksDir: string = STACKS_DIR): { config: Record<string, string>; secretKeys: string[] } {
  const display = `stacks/Pulumi.${stack}.yaml`;
  const path = join(stacksDir, `Pulumi.${stack}.yaml`);
  if (!existsSync(path))
    throw new InputError([`${display}: does not exist: create it with "standort:site: ${stack}" (see README, adding a location)`]);
  const data = (parse(readFileSync(path, "utf8")) ?? {}) as { config?: Record<string, unknown> };
  const config: Record<string, string> = {};
  const secretKeys: string[] = [];
  for (const [key, value] of Object.entries(data.config ?? {})) {
    if (value && typeof value === "object" && "secure" in value) {
      config[key] = OFFLINE_PLACEHOLDER;
      secretKeys.push(key);
    } else {
      config[key] = typeof value === "string" ? value : JSON.stringify(value);
    }
  }
  for (const key of SECRET_CONFIG_KEYS) {
    const full = `${CONFIG_NAMESPACE}:${key}`;
    if (!(full in config)) {
      config[full] = OFFLINE_PLACEHOLDER;
      secretKeys.push(full);
    }
  }
  if (!(`${CONFIG_NAMESPACE}:sshPublicKey` in config)) config[`${CONFIG_NAMESPACE}:sshPublicKey`] = PLACEHOLDER_SSH_KEY;
  return { config, secretKeys: secretKeys.sort() };
}

/**
 * The stack's non-secret provider environment (`standort:providerEnv`),
 * validated like the stack program validates it: what the stack hands the
 * failover scripts, so offline renders carry the same file.
 */
export function stackProviderEnv(stack: string, stacksDir: string = STACKS_DIR): Readonly<Record<string, string>> | undefined {
  const { config, secretKeys } = readStackConfig(stack, stacksDir);
  return parseStackConfig(config, `stacks/Pulumi.${stack}.yaml`, (key) => secretKeys.includes(key)).providerEnv;
}

/** The offline preview of one location stack. */
export async function planStack(
  stack: string,
  options: { sitesDir?: string; stacksDir?: string; onRegister?: (type: string, name: string) => void } = {},
): Promise<MockRunResult> {
  const { config, secretKeys } = readStackConfig(stack, options.stacksDir);
  return runUnderMocks({
    stack,
    config,
    secretKeys,
    onRegister: options.onRegister,
    program: () => locationStack({ sitesDir: options.sitesDir }),
  });
}
