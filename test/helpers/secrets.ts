/** Obviously fake secrets and keys for tests: never a real one in a committed file. */
import { SiteModel } from "../../lib/model/model";
import { RenderSecrets } from "../../lib/render";

export const FAKE_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnlyFakeKeyForTestsOnly00 test@example.invalid";

/** Every secret a site's files need: VRRP per pair, BGP per peer (BGP sites), the provider token. */
export function fakeSecrets(model: SiteModel): RenderSecrets {
  const routing = model.public.mode === "own-prefix" ? model.public.routing : undefined;
  return {
    vrrp: Object.fromEntries(model.pairs.map((p) => [p.name, "fake-vr"])),
    bgp: routing?.kind === "bgp" ? Object.fromEntries(routing.peers.map((p) => [p.name, "fake-bgp-secret"])) : undefined,
    providerApiToken: "fake-token-for-tests",
  };
}
