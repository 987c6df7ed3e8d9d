// A client process for lifetime tests: attaches to a model, prints "attached",
// then for each "check" line on stdin reads every tensor back from its mapped
// VRAM and prints whether all equal the file; exits when stdin ends.
//   bun test/support/attach-child.ts SOCKET MODEL FILE

import { closeSync, openSync, readSync } from "node:fs";
import { ServeClient } from "../../src/serve/client.ts";

const [socket, model, file] = process.argv.slice(2) as [string, string, string];
const client = await ServeClient.connect({ socket, client: "attach-child" });
const attachment = await client.attach(model);
process.stdout.write("attached\n");

function equalToFile(): boolean {
  const fd = openSync(file, "r");
  try {
    for (const t of attachment.tensors.values()) {
      const want = new Uint8Array(t.bytes);
      for (let done = 0; done < t.bytes; ) done += readSync(fd, want, done, t.bytes - done, t.fileOffset + done);
      if (!Buffer.from(t.read()).equals(Buffer.from(want))) return false;
    }
    return true;
  } finally {
    closeSync(fd);
  }
}

for await (const line of console) {
  if (line.trim() === "check") process.stdout.write(equalToFile() ? "equal to the file\n" : "DIFFERENT from the file\n");
}
attachment.close();
client.close();
process.exit(0);
