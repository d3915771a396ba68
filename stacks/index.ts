// Pulumi's entry point (package.json "main"): one location per stack.
import { locationStack } from "./program";

export = locationStack();
