// Named assertions, printed as they are made and counted for the closing line.

export class Tally {
  passed = 0;
  failed = 0;

  check(name, ok, detail = "") {
    const suffix = detail === "" ? "" : ` (${detail})`;
    if (ok) {
      this.passed += 1;
      console.log(`  ok      ${name}${suffix}`);
    } else {
      this.failed += 1;
      console.log(`  FAILED  ${name}${suffix}`);
    }
    return Boolean(ok);
  }

  summary() {
    return `browser: ${this.passed} passed, ${this.failed} failed`;
  }
}
