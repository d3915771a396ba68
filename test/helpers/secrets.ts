/** Obviously fake secrets and keys for tests: never a real one in a committed file. */
import { SiteModel } from "../../lib/model/model";
import { RenderSecrets, placeholderFenceKeys } from "../../lib/render";

export const FAKE_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnlyFakeKeyForTestsOnly00 test@example.invalid";

/** Every secret a site's files need: fence keys per pair member, BGP per peer (BGP sites), the provider token. */
export function fakeSecrets(model: SiteModel): RenderSecrets {
  const routing = model.public.mode === "own-prefix" ? model.public.routing : undefined;
  return {
    fence: fakeFenceKeys(model),
    bgp: routing?.kind === "bgp" ? Object.fromEntries(routing.peers.map((p) => [p.name, "fake-bgp-secret"])) : undefined,
    providerApiToken: "fake-token-for-tests",
  };
}

/** Working fence keys for every pair member (derived from the names, as offline plans derive them). */
export function fakeFenceKeys(model: SiteModel): RenderSecrets["fence"] {
  return Object.fromEntries(model.pairs.flatMap((p) => p.members).map((m) => [m, placeholderFenceKeys(`test-${model.name}`, m)]));
}
