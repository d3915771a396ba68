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
 * included, so the sources are exactly the site's. Steps the clock whenever
 * it is off by more than a second (`makestep 1.0 -1`, chrony.conf(5)): a VM
 * that was paused or restored from a snapshot is back in step at its next
 * update (at most `maxpoll` 2^6 = 64 s) instead of slewing for hours while its
 * pair peer is right. keepalived lowers the priority of a member out of step
 * (`CLOCK_BOUND_SECONDS`). Keeps the RTC in sync.
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
    "# Polled at least every 64 s, so a jump (a paused VM) is seen and stepped within a minute.",
    ...time!.servers.map((s) => `server ${s} iburst maxpoll 6`),
    "driftfile /var/lib/chrony/chrony.drift",
    "# Step whenever the offset exceeds a second, at any time: pair members must agree on the time.",
    "makestep 1.0 -1",
    "rtcsync",
    "leapsectz right/UTC",
    "logdir /var/log/chrony",
    "",
  ].join("\n");
}
