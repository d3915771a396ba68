import test from "node:test";
import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import { Loss, possibleLosses, simulateLoss } from "../lib/footprint/report";
import { placeAll, providerOf } from "../lib/footprint/placement";
import { example, footprintSiteNames, withService } from "./fixtures/footprint/example";
import { SiteModel } from "../lib/model/model";

/**
 * Which of the footprint's sites each loss takes and which services then run read-only, by hand from
 * sites/footprint.yaml. A loss not listed here (a provider or country only other sites have) takes none
 * of the footprint's sites, so every service runs on as before.
 */
const EXPECTED: Array<{ loss: Loss; lostSites: string[]; readOnly: string[] }> = [
  { loss: { provider: "hetzner" }, lostSites: ["helsinki"], readOnly: ["git", "webhosting"] },
  { loss: { provider: "ionos" }, lostSites: ["frankfurt", "karlsruhe"], readOnly: ["groupware", "tickets"] },
  { loss: { provider: "netcup" }, lostSites: ["vienna"], readOnly: ["mail"] },
  { loss: { country: "AT" }, lostSites: ["vienna"], readOnly: ["mail"] },
  { loss: { country: "DE" }, lostSites: ["frankfurt", "karlsruhe"], readOnly: ["groupware", "tickets"] },
  { loss: { country: "FI" }, lostSites: ["helsinki"], readOnly: ["git", "webhosting"] },
];

/** Whether a loss takes a site, from the site's own provider and country. */
const takes = (loss: Loss, site: SiteModel) => ("provider" in loss ? providerOf(site) === loss.provider : site.country === loss.country);

test("the losses to simulate are every provider and every country of the sites", () => {
  const { sites } = example();
  const providers = [...new Set(sites.map(providerOf))].sort();
  const countries = [...new Set(sites.map((s) => s.country))].sort();
  const losses = possibleLosses(sites);
  assert.deepEqual(losses, [...providers.map((provider) => ({ provider })), ...countries.map((country) => ({ country }))]);
  for (const { loss } of EXPECTED)
    assert.ok(
      losses.some((l) => isDeepStrictEqual(l, loss)),
      JSON.stringify(loss),
    );
});

test("losing any one provider or country leaves every service a live copy; exactly these run read-only", () => {
  const { footprint, sites } = example();
  const all = footprint.services.map((s) => s.name).sort();
  const named = new Set(footprintSiteNames(footprint));
  for (const loss of possibleLosses(sites)) {
    const expected = EXPECTED.find((e) => isDeepStrictEqual(e.loss, loss)) ?? { lostSites: [], readOnly: [] };
    const report = simulateLoss(footprint, sites, loss);
    const label = JSON.stringify(loss);
    assert.deepEqual(
      report.lostSites,
      sites
        .filter((s) => takes(loss, s))
        .map((s) => s.name)
        .sort(),
      label,
    );
    assert.deepEqual(
      report.lostSites.filter((s) => named.has(s)),
      expected.lostSites,
      label,
    );
    assert.deepEqual(report.keepLiveCopy, all, label);
    assert.deepEqual(report.noLiveCopy, [], label);
    assert.deepEqual(report.readOnly, expected.readOnly, label);
  }
});

test("the outcome follows from removing the lost sites: a live copy is one at a surviving site", () => {
  const { footprint, sites } = example();
  for (const { loss } of EXPECTED) {
    const gone = new Set(
      sites.filter((s) => ("provider" in loss ? providerOf(s) === loss.provider : s.country === loss.country)).map((s) => s.name),
    );
    const report = simulateLoss(footprint, sites, loss);
    for (const placement of placeAll(footprint, sites)) {
      const entry = report.services.find((s) => s.service === placement.service.name)!;
      assert.deepEqual(entry.liveAt, placement.copies.filter((c) => !gone.has(c)).sort());
      assert.equal(entry.outcome === "read-only", gone.has(placement.writer) && entry.liveAt.length > 0);
    }
  }
});

test("git keeps its migration target as a live copy when its writer and standby are both gone", () => {
  const { footprint, sites } = example();
  // Helsinki writes git and frankfurt stands by: remove frankfurt from the sites and lose Finland, so both are gone.
  const bothLost = simulateLoss(
    footprint,
    sites.filter((s) => s.name !== "frankfurt"),
    { country: "FI" },
  );
  assert.deepEqual(
    bothLost.services.find((s) => s.service === "git"),
    { service: "git", outcome: "read-only", liveAt: ["vienna"] },
  );
});

test("a service whose every copy is lost is reported without a live copy", () => {
  const { footprint, sites } = example();
  const germanOnly = withService(footprint, "tickets", (s) => ({ ...s, standby: "frankfurt" }));
  const report = simulateLoss(germanOnly, sites, { country: "DE" });
  assert.deepEqual(report.noLiveCopy, ["tickets"]);
  assert.deepEqual(
    report.services.find((s) => s.service === "tickets"),
    { service: "tickets", outcome: "no-live-copy", liveAt: [] },
  );
  assert.deepEqual(
    report.services.find((s) => s.service === "mail"),
    { service: "mail", outcome: "standby-lost", liveAt: ["vienna"] },
  );
});
