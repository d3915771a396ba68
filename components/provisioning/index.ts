/**
 * How hosts and networks come to be at a provider: the seam's Pulumi half
 * (`lib/providers/provisioning.ts`) and the choice of a site's implementation
 * (`lib/providers/provisioners.ts`). The components ask `Provisioning` and
 * never branch on the provider themselves.
 */
export * from "../../lib/providers/provisioning";
export { provisioningFor } from "../../lib/providers/provisioners";
