/** Any other provider that hands servers over running: the common behaviour (`../handed-over.ts`), nothing more. */
import { handedOverAdapter } from "../handed-over";

export const otherAdapter = handedOverAdapter(
  { id: "other", operator: "other", label: "other", displayName: "another provider" },
  { scaffold: { describeSite: (title) => `Pre-provisioned, ${title}` } },
);
