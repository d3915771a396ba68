// Renderers refuse input a daemon would reject (or that would render an unsafe
// file) before producing any text, with one line per problem naming the site,
// the host, the field and the rule.
import test from "node:test";
import assert from "node:assert/strict";
import { loadSites } from "../lib/model/load";
import { SiteModel } from "../lib/model/model";
import {
  RenderInputError,
  renderBirdConfig,
  renderChronyConfig,
  renderCloudInit,
  renderFenceFiles,
  renderHaproxyConfig,
  renderHostFiles,
  renderKeepalivedConfig,
  renderNftablesRuleset,
} from "../lib/render";
import { fakeSecrets } from "./helpers/secrets";

const sites = loadSites();
const site = (name: string): SiteModel => sites.find((s) => s.name === name)!;

/** A deep copy of a site's model with a change applied (models are read-only; tests edit copies). */
function mutated(name: string, change: (model: any) => void): SiteModel {
  const copy = structuredClone(site(name)) as any;
  change(copy);
  return copy as SiteModel;
}

/** Asserts that `render` throws a RenderInputError whose message is exactly `lines`. */
function assertRefused(render: () => unknown, ...lines: string[]): void {
  assert.throws(render, (error: unknown) => {
    assert.ok(error instanceof RenderInputError, `expected RenderInputError, got ${String(error)}`);
    assert.equal(error.name, "RenderInputError");
    assert.equal(error.message, lines.join("\n"));
    return true;
  });
}

test("a service port out of range is refused with site, host, field and rule", () => {
  assertRefused(
    () => renderHaproxyConfig(site("vienna"), "vie-proxy-1", { services: [{ name: "platform", hostnames: [], port: 70000 }] }),
    "vienna: vie-proxy-1: services[0].port: 70000 must be between 1 and 65535",
  );
});

test("services: duplicate names, two defaults and a bad host name are each named", () => {
  assertRefused(
    () =>
      renderHaproxyConfig(site("vienna"), "vie-proxy-1", {
        services: [
          { name: "platform", hostnames: [], port: 8080 },
          { name: "platform", hostnames: ["Shop.Example.org"], port: 8443 },
          { name: "other", hostnames: [], port: 9000 },
        ],
      }),
    'vienna: vie-proxy-1: services[1].hostnames[0]: "Shop.Example.org" is not a fully qualified lower-case host name',
    "vienna: vie-proxy-1: services[1].name: platform is already the name of services[0]",
    "vienna: vie-proxy-1: services[2].hostnames: other and platform both have no host names: only one service can be the default",
  );
});

test("HAProxy renders only on proxies", () => {
  assertRefused(
    () => renderHaproxyConfig(site("vienna"), "vie-fw-1"),
    "vienna: vie-fw-1: hostName: vie-fw-1 is a firewall host: HAProxy runs on the proxy pair",
  );
});

test("a heartbeat address outside its segment is refused", () => {
  const model = mutated("vienna", (m) => {
    m.pairs[1].heartbeat["vie-proxy-2"] = "10.30.9.9";
  });
  assertRefused(
    () => renderKeepalivedConfig(model, "vie-proxy-1", fakeSecrets(model)),
    "vienna: vie-proxy-1: pairs[1].heartbeat.vie-proxy-2: 10.30.9.9 is outside segment hb-proxy (10.30.3.8/29)",
  );
});

test("a host address outside its segment is refused by every renderer of that host", () => {
  const model = mutated("vienna", (m) => {
    m.hosts.find((h: any) => h.name === "vie-proxy-1").interfaces[0].address = "10.30.200.10";
  });
  const line = "vienna: vie-proxy-1: hosts[2].interfaces[0].address: 10.30.200.10 is outside segment dmz (10.30.0.0/24)";
  assertRefused(() => renderNftablesRuleset(model, "vie-proxy-1", { sites }), line);
  assertRefused(() => renderChronyConfig(model, "vie-proxy-1"), line);
  assertRefused(() => renderHostFiles(model, "vie-proxy-1", fakeSecrets(model), { sites }), line);
});

test("a missing or malformed fence key is refused, naming the member whose key it is", () => {
  const model = site("vienna");
  const keys = fakeSecrets(model).fence;
  assertRefused(
    () => renderFenceFiles(model, "vie-proxy-1", { ...fakeSecrets(model), fence: { ...keys, "vie-proxy-2": undefined! } }),
    "vienna: vie-proxy-1: secrets.fence.vie-proxy-2: Invalid input: expected object, received undefined",
  );
  assertRefused(
    () =>
      renderFenceFiles(model, "vie-proxy-1", {
        ...fakeSecrets(model),
        fence: { ...keys, "vie-proxy-1": { ...keys["vie-proxy-1"], clientKey: "not a key" } },
      }),
    "vienna: vie-proxy-1: secrets.fence.vie-proxy-1.clientKey: must be an OpenSSH private key",
  );
  assertRefused(
    () => renderFenceFiles(model, "vie-virt-1", fakeSecrets(model)),
    "vienna: vie-virt-1: hostName: vie-virt-1 has no pair peer to fence",
  );
});

test("the released member of a dissolved pair gets no keepalived, and says why", () => {
  const model = mutated("vienna", (m) => {
    m.pairs[2].dissolved = true;
    m.pairs[2].priorities = { "vie-stor-1": 150 };
  });
  assertRefused(
    () => renderKeepalivedConfig(model, "vie-stor-2", fakeSecrets(model)),
    "vienna: vie-stor-2: hostName: vie-stor-2 was released from the dissolved storage pair: only vie-stor-1 runs keepalived",
  );
});

test("priorities that would make the passive member win are refused", () => {
  const model = mutated("karlsruhe", (m) => {
    m.pairs[0].priorities = { "fkb-fw-1": 100, "fkb-fw-2": 150 };
  });
  assertRefused(
    () => renderKeepalivedConfig(model, "fkb-fw-1", fakeSecrets(model)),
    "karlsruhe: fkb-fw-1: pairs[0].priorities: the active member fkb-fw-1 must have a higher priority than fkb-fw-2",
  );
});

test("Hetzner Cloud pairs need the provider API token (fencing and floating IPs)", () => {
  const model = site("helsinki");
  assertRefused(
    () => renderKeepalivedConfig(model, "hel-proxy-1", { fence: fakeSecrets(model).fence }),
    "helsinki: hel-proxy-1: secrets.providerApiToken: is required on helsinki: the failover script fences and moves addresses through the provider API",
  );
});

test("empty and malformed time sources are refused", () => {
  assertRefused(
    () =>
      renderChronyConfig(
        mutated("vienna", (m) => (m.time.servers = [])),
        "vie-fw-1",
      ),
    "vienna: vie-fw-1: time.servers: must list at least one time source",
  );
  assertRefused(
    () =>
      renderChronyConfig(
        mutated("vienna", (m) => (m.time.servers = ["ptbtime1.ptb.de", "bad host", "ptbtime1.ptb.de"])),
        "vie-fw-1",
      ),
    'vienna: vie-fw-1: time.servers[1]: "bad host" is not a host name or IPv4 address',
    "vienna: vie-fw-1: time.servers[2]: ptbtime1.ptb.de is already listed as time.servers[0]",
  );
});

test("a BGP peer inside the own prefix or the site supernet is refused", () => {
  const model = mutated("frankfurt", (m) => {
    m.public.routing.peers[0].address = "198.18.2.9";
    m.public.routing.peers[1].address = "10.10.8.1";
  });
  assertRefused(
    () => renderBirdConfig(model, "fra-fw-1", fakeSecrets(model)),
    "frankfurt: fra-fw-1: public.routing.peers[0].address: 198.18.2.9 lies inside the own prefix 198.18.2.0/23: a BGP peer must be a provider-side address",
    "frankfurt: fra-fw-1: public.routing.peers[1].address: 10.10.8.1 lies inside the site's supernet 10.10.0.0/16: a BGP peer must be a provider-side address",
  );
});

test("BGP sessions need their passwords, and BIRD renders only where BGP routes an own prefix", () => {
  const model = site("frankfurt");
  assertRefused(
    () => renderBirdConfig(model, "fra-fw-1", { ...fakeSecrets(model), bgp: { "edge-a": "fake-bgp-secret" } }),
    "frankfurt: fra-fw-1: secrets.bgp.edge-b: is required: every BGP session is password-protected",
  );
  assertRefused(
    () => renderBirdConfig(model, "fra-fw-1", { ...fakeSecrets(model), bgp: { "edge-a": 'fake"quote', "edge-b": "fake-bgp-secret" } }),
    "frankfurt: fra-fw-1: secrets.bgp.edge-a: must not contain a quote or a backslash",
  );
  assertRefused(
    () => renderBirdConfig(site("vienna"), "vie-fw-1", fakeSecrets(site("vienna"))),
    "vienna: vie-fw-1: public.routing: vienna does not announce an own prefix by BGP: render BIRD only for own-prefix sites with routing kind bgp",
  );
  assertRefused(
    () =>
      renderBirdConfig(
        mutated("frankfurt", (m) => (m.public.routing.peers[0].asn = 0)),
        "fra-fw-1",
        fakeSecrets(model),
      ),
    "frankfurt: fra-fw-1: public.routing.peers[0].asn: 0 must be an AS number between 1 and 4294967295",
  );
});

test("management open to the whole internet, or to nobody, is refused", () => {
  assertRefused(
    () =>
      renderNftablesRuleset(
        mutated("vienna", (m) => (m.management.allowlist = ["0.0.0.0/0"])),
        "vie-fw-1",
        { sites },
      ),
    "vienna: vie-fw-1: management.allowlist[0]: 0.0.0.0/0 would open management to the whole internet",
  );
  assertRefused(
    () =>
      renderNftablesRuleset(
        mutated("vienna", (m) => (m.management.allowlist = [])),
        "vie-proxy-1",
      ),
    "vienna: vie-proxy-1: management.allowlist: must list at least one prefix: management would be unreachable",
  );
});

test("firewall and storage rulesets need every site's model for the partner's supernet", () => {
  assertRefused(
    () => renderNftablesRuleset(site("vienna"), "vie-fw-1"),
    "vienna: vie-fw-1: options.sites: is required for firewall hosts: the partner karlsruhe's supernet comes from its model",
  );
  assertRefused(
    () => renderNftablesRuleset(site("vienna"), "vie-stor-2", { sites: [site("vienna")] }),
    "vienna: vie-stor-2: partner: karlsruhe is not among the site models passed in options.sites",
  );
});

test("an unknown host is refused with the hosts that exist", () => {
  assertRefused(
    () => renderChronyConfig(site("karlsruhe"), "fkb-nope-1"),
    "karlsruhe: fkb-nope-1: hostName: fkb-nope-1 is not a host of karlsruhe (hosts: fkb-fw-1, fkb-fw-2, fkb-proxy-1, fkb-proxy-2, fkb-stor-1, fkb-stor-2, fkb-virt-1, fkb-virt-2)",
  );
});

test("an extra segment whose interface name would be a NIC of the host is refused", () => {
  const model = mutated("vienna", (m) => {
    m.segments.push({ ...m.segments[0], name: "eth1", kind: "extra", cidr: "10.30.8.0/24", members: ["firewall"] });
    m.hosts[0].interfaces.push({ segment: "eth1", address: "10.30.8.2", prefixLength: 24 });
  });
  assertRefused(
    () => renderChronyConfig(model, "vie-fw-1"),
    "vienna: vie-fw-1: hosts[0].interfaces[5].segment: segment eth1 would be interface eth1, which is a NIC of the host: rename the segment",
  );
});

test("cloud-init needs a valid SSH key and an API-provisioned site", () => {
  const model = site("helsinki");
  assertRefused(
    () => renderCloudInit(model, "hel-fw-1", [], { sshAuthorizedKeys: ["ssh-dss AAAAB3NzaC1kc3MAAACBAFake old@example.invalid"] }),
    "helsinki: hel-fw-1: options.sshAuthorizedKeys[0]: is not an OpenSSH public key (type, base64 key, optional comment on one line)",
  );
  assertRefused(
    () => renderCloudInit(model, "hel-fw-1", []),
    "helsinki: hel-fw-1: options.sshAuthorizedKeys: must list at least one key: delivery logs in as root with it",
  );
  assertRefused(
    () => renderCloudInit(site("vienna"), "vie-fw-1", [], { sshAuthorizedKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake test"] }),
    "vienna: vie-fw-1: provider.kind: netcup hosts are handed over running: cloud-init user-data is only for hosts the library creates",
  );
});

test("renderHostFiles reports every renderer's problems at once, each line once", () => {
  const model = mutated("vienna", (m) => (m.time.servers = []));
  assertRefused(
    () => renderHostFiles(model, "vie-proxy-1", fakeSecrets(model), { sites, services: [{ name: "platform", hostnames: [], port: 0 }] }),
    "vienna: vie-proxy-1: services[0].port: 0 must be between 1 and 65535",
    "vienna: vie-proxy-1: time.servers: must list at least one time source",
  );
});
