/**
 * The geo-redundant footprint: `sites/footprint.yaml` read, placed, checked
 * and rendered. Everything here is pure except `loadFootprint`.
 */
export * from "./schema";
export * from "./placement";
export * from "./wireguard";
export * from "./jobs";
export * from "./policies";
export * from "./services";
export * from "./report";
export * from "./load";
