import { open } from 'node:fs/promises';
import { FailedPreconditionError } from '@virtfleet/shared';

/*
 * A QEMU save image as libvirt writes it (virDomainSave): a fixed header,
 * then `dataLength` bytes holding the domain XML (NUL-terminated), the
 * migration cookie (NUL-terminated, at `cookieOffset`) and padding, then
 * QEMU's migration stream. libvirt pads the XML region so that the XML can
 * be rewritten later (as virDomainSaveImageDefineXML does); it refuses a
 * restore whose XML renames the domain or changes its UUID, which a VM
 * restored under another name or on another host needs, so the XML is
 * rewritten here, within the same padding, under the same rules.
 */
const MAGIC = 'LibvirtQemudSave';
const VERSION = 2;
/** magic[16], version, dataLength, wasRunning, compressed, cookieOffset, unused[14]: all little-endian uint32. */
const HEADER_BYTES = 16 + 4 * 5 + 4 * 14;

interface SaveImageHeader {
  bytes: Buffer;
  dataLength: number;
  cookieOffset: number;
}

function parseHeader(bytes: Buffer, path: string): SaveImageHeader {
  if (bytes.length < HEADER_BYTES || bytes.toString('latin1', 0, 16) !== MAGIC) throw new FailedPreconditionError(`${path} is not a libvirt QEMU save image`);
  const version = bytes.readUInt32LE(16);
  if (version !== VERSION) throw new FailedPreconditionError(`${path} is a libvirt save image of version ${version}; version ${VERSION} is understood`);
  return { bytes, dataLength: bytes.readUInt32LE(20), cookieOffset: bytes.readUInt32LE(32) };
}

function cString(data: Buffer, from: number): string {
  const end = data.indexOf(0, from);
  return data.toString('utf8', from, end < 0 ? data.length : end);
}

/**
 * The domain XML stored in a save image, and a way to rewrite it in place.
 * @throws FailedPreconditionError when the file is not a save image this code understands
 */
export async function readSaveImage(path: string): Promise<{ xml: string; rewrite(xml: string): Promise<void> }> {
  const handle = await open(path, 'r');
  let header: SaveImageHeader;
  let data: Buffer;
  try {
    const head = Buffer.alloc(HEADER_BYTES);
    await handle.read(head, 0, HEADER_BYTES, 0);
    header = parseHeader(head, path);
    data = Buffer.alloc(header.dataLength);
    const { bytesRead } = await handle.read(data, 0, header.dataLength, HEADER_BYTES);
    if (bytesRead !== header.dataLength) throw new FailedPreconditionError(`${path} ends inside its header`);
  } finally {
    await handle.close();
  }
  const xml = cString(data, 0);
  const cookie = header.cookieOffset > 0 ? cString(data, header.cookieOffset) : undefined;
  return {
    xml,
    async rewrite(next: string) {
      const xmlBytes = Buffer.from(`${next}\0`, 'utf8');
      const cookieBytes = cookie === undefined ? Buffer.alloc(0) : Buffer.from(`${cookie}\0`, 'utf8');
      if (xmlBytes.length + cookieBytes.length > header.dataLength) {
        throw new FailedPreconditionError(`the new domain XML (${xmlBytes.length} bytes) does not fit the ${header.dataLength - cookieBytes.length} bytes ${path} keeps for it`);
      }
      // Header and XML region in one write: the migration stream after them is never touched.
      const whole = Buffer.alloc(HEADER_BYTES + header.dataLength);
      header.bytes.copy(whole, 0, 0, HEADER_BYTES);
      whole.writeUInt32LE(cookie === undefined ? 0 : xmlBytes.length, 32);
      xmlBytes.copy(whole, HEADER_BYTES);
      cookieBytes.copy(whole, HEADER_BYTES + xmlBytes.length);
      const out = await open(path, 'r+');
      try {
        await out.write(whole, 0, whole.length, 0);
        await out.sync();
      } finally {
        await out.close();
      }
    },
  };
}
