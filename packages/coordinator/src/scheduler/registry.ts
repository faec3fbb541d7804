/** Plugins by name. Registering a name twice is a bug and throws. */
export class Registry<T> {
  private readonly entries = new Map<string, T>();

  constructor(private readonly kind: string) {}

  register(name: string, entry: T): this {
    if (this.entries.has(name)) throw new Error(`${this.kind} ${name} is registered twice`);
    this.entries.set(name, entry);
    return this;
  }

  get(name: string): T | undefined {
    return this.entries.get(name);
  }

  names(): string[] {
    return [...this.entries.keys()];
  }
}
