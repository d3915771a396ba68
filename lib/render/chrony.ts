/**
 * chrony: every host of a site uses the same sources (`time.servers`), so the
 * members of a pair never disagree about time (VRRP adverts, logs, snapshots).
 */
import { z } from "zod";
import type { SiteModel } from "../model/model";
import { ProblemCollector } from "./errors";
import { hostOrAddress } from "./inputs";
import { checkHost } from "./interfaces";
import type { RenderOptions } from "./types";

const timeSchema = z.strictObject({
  servers: z
    .array(hostOrAddress)
    .min(1, "must list at least one time source")
    .superRefine((servers, ctx) => {
      servers.forEach((s, i) => {
        const first = servers.indexOf(s);
        if (first !== i) ctx.addIssue({ code: "custom", path: [i], message: `${s} is already listed as time.servers[${first}]` });
      });
    }),
});

/**
 * Renders `/etc/chrony/chrony.conf`. No DHCP or distribution sources are
 * included, so the sources are exactly the site's. Steps the clock only in
 * the first three updates (`makestep`), then slews; keeps the RTC in sync.
 * Validates first and throws `RenderInputError` naming site, host, field and rule.
 */
export function renderChronyConfig(model: SiteModel, hostName: string, options: RenderOptions = {}): string {
  const problems = new ProblemCollector(model.name, hostName);
  checkHost(model, hostName, problems, options);
  const time = problems.parse(timeSchema, model.time, "time");
  problems.throwIfAny();
  return [
    `# standort: chrony of ${hostName} (${model.name}). Rendered from ${model.file}; do not edit.`,
    "# Every host of the site uses the same sources.",
    ...time!.servers.map((s) => `server ${s} iburst`),
    "driftfile /var/lib/chrony/chrony.drift",
    "# Step at most during the first three updates after start, then only slew.",
    "makestep 1.0 3",
    "rtcsync",
    "leapsectz right/UTC",
    "logdir /var/log/chrony",
    "",
  ].join("\n");
}
