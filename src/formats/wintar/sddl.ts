/**
 * SDDL (MSWINDOWS.sd, the legacy security-descriptor record that go-winio only reads, through
 * Win32 ConvertStringSecurityDescriptorToSecurityDescriptor). Converting SDDL to a binary
 * descriptor byte-for-byte like Windows needs the full alias tables and the exact layout
 * Windows produces, which cannot be verified here without Windows; so it is not done.
 * windowsEntryFromTar keeps the string in `WindowsEntry.sddl` instead.
 */
import { notImplemented } from '../../services/errdefs.js';

export function securityDescriptorFromSddl(sddl: string): Buffer {
  throw notImplemented(`converting SDDL to a binary security descriptor (${JSON.stringify(sddl.slice(0, 40))})`);
}
