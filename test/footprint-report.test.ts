import test from "node:test";
import assert from "node:assert/strict";
import { renderFootprintMermaid, renderFootprintText } from "../lib/footprint/report";
import { example, footprintSiteNames, withService } from "./fixtures/footprint/example";
import { Footprint } from "../lib/footprint/schema";
import { SiteModel } from "../lib/model/model";
import { providerOf } from "../lib/footprint/placement";

/** The lines of one section of the text report (from its heading to the next blank line). */
function section(text: string, heading: string): string[] {
  const lines = text.split("\n");
  const start = lines.indexOf(heading);
  assert.notEqual(start, -1, `no section ${heading}`);
  const end = lines.indexOf("", start);
  return lines.slice(start + 1, end);
}

test("the text report shows shares of primaries per provider and per country", () => {
  const { footprint, sites } = example();
  const text = renderFootprintText(footprint, sites);
  assert.deepEqual(section(text, "share of primaries"), [
    "  by        holder   primaries  share  services",
    "  provider  hetzner  2/5        40%    git, webhosting",
    "  provider  ionos    2/5        40%    groupware, tickets",
    "  provider  netcup   1/5        20%    mail",
    "  country   AT       1/5        20%    mail",
    "  country   DE       2/5        40%    groupware, tickets",
    "  country   FI       2/5        40%    git, webhosting",
  ]);
  assert.match(text, /\nviolations: none\n$/);
});

test("the text report lists replication paths with their intervals and tunnels", () => {
  const { footprint, sites } = example();
  assert.deepEqual(section(renderFootprintText(footprint, sites), "replication paths"), [
    "  from       to         service     purpose    tunnel      files                                      databases",
    "  frankfurt  helsinki   groupware   standby    wg-fra-hel  data every 15 min                          groupware (postgres streaming)",
    "  helsinki   frankfurt  git         standby    wg-fra-hel  repositories every 15 min                  forge (postgres streaming)",
    "  helsinki   frankfurt  webhosting  standby    wg-fra-hel  htdocs every 10 min, uploads every 10 min  panel (postgres streaming), sites (mariadb binlog)",
    "  helsinki   vienna     git         migration  wg-hel-vie  repositories every 15 min                  forge (postgres streaming)",
    "  karlsruhe  vienna     tickets     standby    wg-fkb-vie  attachments every 15 min                   tickets (postgres streaming), wiki (postgres streaming)",
    "  vienna     karlsruhe  mail        standby    wg-fkb-vie  dkim every 1 min, vmail every 5 min        postfixadmin (mariadb binlog)",
  ]);
});

/** What each loss does, by hand from sites/footprint.yaml, as the report prints it for the footprint's own sites. */
const LOSS_LINES = [
  "  lost              sites                 read-only until promoted  standby lost           no live copy",
  "  provider hetzner  helsinki              git, webhosting           groupware              -",
  "  provider ionos    frankfurt, karlsruhe  groupware, tickets        git, mail, webhosting  -",
  "  provider netcup   vienna                mail                      git, tickets           -",
  "  country AT        vienna                mail                      git, tickets           -",
  "  country DE        frankfurt, karlsruhe  groupware, tickets        git, mail, webhosting  -",
  "  country FI        helsinki              git, webhosting           groupware              -",
];

/** A table line's cells (cells hold single spaces only; columns are at least two apart). */
const cells = (line: string) => line.trim().split(/ {2,}/);

const providerName = (site: SiteModel) => providerOf(site);

/** The footprint's own sites: the ones its services are placed on. */
const ownSites = (footprint: Footprint, sites: ReadonlyArray<SiteModel>) =>
  sites.filter((s) => footprintSiteNames(footprint).includes(s.name));

test("the text report shows what each provider's or country's loss does", () => {
  const { footprint, sites } = example();
  const heading = "losing a provider or a country";
  // Line for line, with the sites the footprint places its services on.
  assert.deepEqual(section(renderFootprintText(footprint, ownSites(footprint, sites)), heading), LOSS_LINES);
  // With every site of the folder: a row per provider, then per country, each naming every site it takes; a loss
  // that takes none of the footprint's sites (a provider or country only other sites have) changes no service.
  const rows = section(renderFootprintText(footprint, sites), heading).map(cells);
  assert.deepEqual(rows[0], cells(LOSS_LINES[0]));
  const byHand = new Map(LOSS_LINES.slice(1).map((l) => [cells(l)[0], cells(l).slice(2)]));
  const losses = [
    ...[...new Set(sites.map(providerName))]
      .sort()
      .map((p) => ({ label: `provider ${p}`, takes: (s: SiteModel) => providerName(s) === p })),
    ...[...new Set(sites.map((s) => s.country))].sort().map((c) => ({ label: `country ${c}`, takes: (s: SiteModel) => s.country === c })),
  ];
  assert.deepEqual(
    rows.slice(1).map((r) => r[0]),
    losses.map((l) => l.label),
  );
  for (const label of byHand.keys())
    assert.ok(
      losses.some((l) => l.label === label),
      label,
    );
  for (const [i, loss] of losses.entries()) {
    const taken = sites
      .filter(loss.takes)
      .map((s) => s.name)
      .sort();
    assert.deepEqual(rows[i + 1], [loss.label, taken.join(", "), ...(byHand.get(loss.label) ?? ["-", "-", "-"])], loss.label);
  }
});

test("the text report ends with every violation", () => {
  const { footprint, sites } = example();
  const broken = withService(footprint, "webhosting", (s) => ({ ...s, primary: "frankfurt", standby: "helsinki" }));
  const text = renderFootprintText(broken, sites);
  assert.equal(
    text.slice(text.indexOf("violations:")),
    [
      "violations: 2",
      "  sites/footprint.yaml: policy.maxPrimaryShare: provider ionos holds the primaries of 3 of 5 services (groupware, tickets, webhosting), more than 50%: move a primary to a site of another provider",
      "  sites/footprint.yaml: policy.maxPrimaryShare: country DE holds the primaries of 3 of 5 services (groupware, tickets, webhosting), more than 50%: move a primary to a site in another country",
      "",
    ].join("\n"),
  );
});

test("the text report is byte-stable", () => {
  const a = example();
  const b = example();
  assert.equal(renderFootprintText(a.footprint, a.sites), renderFootprintText(b.footprint, b.sites));
});

/** The diagram's replication edges, by hand from sites/footprint.yaml. */
const MERMAID_EDGES = [
  '  site_frankfurt -->|"groupware: files every 15 min"| site_helsinki',
  '  site_helsinki -->|"git: files every 15 min"| site_frankfurt',
  '  site_helsinki -->|"webhosting: files every 10 min"| site_frankfurt',
  '  site_helsinki -.->|"git migration: files every 15 min"| site_vienna',
  '  site_karlsruhe -->|"tickets: files every 15 min"| site_vienna',
  '  site_vienna -->|"mail: files every 5 min"| site_karlsruhe',
];

test("the Mermaid diagram groups sites by country and provider, edges labelled with the interval", () => {
  const { footprint, sites } = example();
  // Line for line, with the sites the footprint places its services on.
  assert.equal(
    renderFootprintMermaid(footprint, ownSites(footprint, sites)),
    [
      "flowchart LR",
      '  subgraph country_AT["AT"]',
      '    subgraph provider_AT_netcup["netcup"]',
      '      site_vienna["vienna (vie)"]',
      "    end",
      "  end",
      '  subgraph country_DE["DE"]',
      '    subgraph provider_DE_ionos["ionos"]',
      '      site_frankfurt["frankfurt (fra)"]',
      '      site_karlsruhe["karlsruhe (fkb)"]',
      "    end",
      "  end",
      '  subgraph country_FI["FI"]',
      '    subgraph provider_FI_hetzner["hetzner"]',
      '      site_helsinki["helsinki (hel)"]',
      "    end",
      "  end",
      ...MERMAID_EDGES,
      "",
    ].join("\n"),
  );
  // With every site of the folder: each country a group, each of its providers a group inside, each site in its
  // provider's group (all in name order); the edges stay the footprint's.
  const id = (text: string) => text.replace(/[^A-Za-z0-9]/g, "_");
  const groups = [...new Set(sites.map((s) => s.country))].sort().flatMap((country) => {
    const inCountry = sites.filter((s) => s.country === country);
    return [
      `  subgraph country_${id(country)}["${country}"]`,
      ...[...new Set(inCountry.map(providerName))].sort().flatMap((provider) => [
        `    subgraph provider_${id(`${country}_${provider}`)}["${provider}"]`,
        ...inCountry
          .filter((s) => providerName(s) === provider)
          .map((s) => s.name)
          .sort()
          .map((name) => `      site_${id(name)}["${name} (${sites.find((s) => s.name === name)!.code})"]`),
        "    end",
      ]),
      "  end",
    ];
  });
  assert.equal(renderFootprintMermaid(footprint, sites), ["flowchart LR", ...groups, ...MERMAID_EDGES, ""].join("\n"));
});

test("a promoted service's edge runs from its standby back to its primary", () => {
  const { footprint, sites } = example();
  const promoted = withService(footprint, "mail", (s) => ({ ...s, mode: "promoted" }));
  const edges = renderFootprintMermaid(promoted, sites)
    .split("\n")
    .filter((l) => l.includes("mail:"));
  assert.deepEqual(edges, ['  site_karlsruhe -->|"mail: files every 5 min"| site_vienna']);
});
