//! Per-vCPU CPUID: KVM reports what it can virtualize
//! (KVM_GET_SUPPORTED_CPUID); each vCPU then gets its own APIC ID and a
//! topology of `count` single-threaded cores in one package, and the
//! "hypervisor present" bit. Leaf layouts: Intel SDM vol. 2A "CPUID", AMD
//! APM vol. 3 appendix E.

use kvm_bindings::{kvm_cpuid_entry2, CpuId};

/// Where this vCPU sits in the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuTopology {
    /// This vCPU's index, which is also its (x2)APIC ID.
    pub index: u8,
    /// vCPUs in the VM.
    pub count: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuVendor {
    Intel,
    Amd,
    Other,
}

const LEAF_VENDOR: u32 = 0x0;
const LEAF_FEATURES: u32 = 0x1;
const LEAF_CACHE_PARAMETERS: u32 = 0x4;
const LEAF_PERFORMANCE_MONITORING: u32 = 0xa;
const LEAF_EXTENDED_TOPOLOGY: u32 = 0xb;
const LEAF_EXTENDED_TOPOLOGY_V2: u32 = 0x1f;
const LEAF_AMD_SIZE_IDENTIFIERS: u32 = 0x8000_0008;
const LEAF_AMD_EXTENDED_APIC_ID: u32 = 0x8000_001e;

/// Leaf 1 ECX bit 31: reserved for use by hypervisors to announce themselves.
const FEATURES_ECX_HYPERVISOR: u32 = 1 << 31;
/// Leaf 1 EDX bit 28: more than one logical processor per package.
const FEATURES_EDX_HTT: u32 = 1 << 28;

/// Extended topology level types (leaf 0xB/0x1F ECX[15:8]).
const LEVEL_TYPE_SMT: u32 = 1;
const LEVEL_TYPE_CORE: u32 = 2;

// "GenuineIntel" and "AuthenticAMD" as leaf 0 returns them in EBX.
const VENDOR_INTEL_EBX: u32 = 0x756e_6547;
const VENDOR_AMD_EBX: u32 = 0x6874_7541;

pub fn vendor(cpuid: &CpuId) -> CpuVendor {
    match cpuid
        .as_slice()
        .iter()
        .find(|e| e.function == LEAF_VENDOR)
        .map(|e| e.ebx)
    {
        Some(VENDOR_INTEL_EBX) => CpuVendor::Intel,
        Some(VENDOR_AMD_EBX) => CpuVendor::Amd,
        _ => CpuVendor::Other,
    }
}

/// Bits needed to number `count` items: APIC ID fields are sized by it.
fn id_bits(count: u8) -> u32 {
    if count <= 1 {
        0
    } else {
        u32::BITS - u32::from(count - 1).leading_zeros()
    }
}

/// Rewrites a copy of KVM's supported CPUID for one vCPU.
pub fn adjust_for_vcpu(cpuid: &mut CpuId, topology: VcpuTopology) {
    let vendor = vendor(cpuid);
    let apic_id = u32::from(topology.index);
    let count = u32::from(topology.count);
    for entry in cpuid.as_mut_slice() {
        match entry.function {
            LEAF_FEATURES => adjust_features(entry, apic_id, count),
            LEAF_CACHE_PARAMETERS if vendor == CpuVendor::Intel => {
                adjust_cache_parameters(entry, count)
            }
            LEAF_PERFORMANCE_MONITORING => {
                // No virtual PMU is offered: the guest must not program one.
                entry.eax = 0;
                entry.ebx = 0;
                entry.ecx = 0;
                entry.edx = 0;
            }
            LEAF_EXTENDED_TOPOLOGY | LEAF_EXTENDED_TOPOLOGY_V2 => {
                adjust_extended_topology(entry, apic_id, topology.count)
            }
            LEAF_AMD_SIZE_IDENTIFIERS if vendor == CpuVendor::Amd => {
                // ECX[7:0]: cores per package - 1; ECX[15:12]: APIC ID bits
                // that number the cores.
                entry.ecx = (entry.ecx & !0xf0ff) | (id_bits(topology.count) << 12) | (count - 1);
            }
            LEAF_AMD_EXTENDED_APIC_ID if vendor == CpuVendor::Amd => {
                // EAX: extended APIC ID; EBX: compute unit = core, one
                // thread each; ECX: node 0, one node.
                entry.eax = apic_id;
                entry.ebx = apic_id & 0xff;
                entry.ecx = 0;
            }
            _ => {}
        }
    }
}

fn adjust_features(entry: &mut kvm_cpuid_entry2, apic_id: u32, count: u32) {
    // EBX[31:24]: initial APIC ID; EBX[23:16]: logical processors per
    // package; EBX[15:0] (CLFLUSH size, brand) stays as KVM reports it.
    entry.ebx = (apic_id << 24) | (count << 16) | (entry.ebx & 0xffff);
    entry.ecx |= FEATURES_ECX_HYPERVISOR;
    if count > 1 {
        entry.edx |= FEATURES_EDX_HTT;
    } else {
        entry.edx &= !FEATURES_EDX_HTT;
    }
}

fn adjust_cache_parameters(entry: &mut kvm_cpuid_entry2, count: u32) {
    let cache_level = (entry.eax >> 5) & 0x7;
    if cache_level == 0 {
        return; // no more caches
    }
    // EAX[31:26]: cores per package - 1; EAX[25:14]: logical processors
    // sharing this cache - 1 (private L1/L2, a shared L3).
    let sharing = if cache_level >= 3 { count - 1 } else { 0 };
    entry.eax = (entry.eax & 0x3fff) | ((count - 1) << 26) | (sharing << 14);
}

fn adjust_extended_topology(entry: &mut kvm_cpuid_entry2, apic_id: u32, count: u8) {
    // EDX: x2APIC ID of this vCPU at every level.
    entry.edx = apic_id;
    match entry.index {
        0 => {
            // SMT level: one thread per core, so no APIC ID bits.
            entry.eax = 0;
            entry.ebx = 1;
            entry.ecx = (LEVEL_TYPE_SMT << 8) | entry.index;
        }
        1 => {
            // Core level: `count` cores; shift to the package ID.
            entry.eax = id_bits(count);
            entry.ebx = u32::from(count);
            entry.ecx = (LEVEL_TYPE_CORE << 8) | entry.index;
        }
        _ => {
            // Invalid level type ends the enumeration.
            entry.eax = 0;
            entry.ebx = 0;
            entry.ecx = entry.index;
        }
    }
}

#[cfg(test)]
mod tests {
    use kvm_bindings::KVM_CPUID_FLAG_SIGNIFCANT_INDEX;

    use super::*;

    fn entry(
        function: u32,
        index: u32,
        eax: u32,
        ebx: u32,
        ecx: u32,
        edx: u32,
    ) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index,
            flags: if index > 0 {
                KVM_CPUID_FLAG_SIGNIFCANT_INDEX
            } else {
                0
            },
            eax,
            ebx,
            ecx,
            edx,
            ..Default::default()
        }
    }

    fn find(cpuid: &CpuId, function: u32, index: u32) -> kvm_cpuid_entry2 {
        *cpuid
            .as_slice()
            .iter()
            .find(|e| e.function == function && e.index == index)
            .unwrap()
    }

    fn intel() -> CpuId {
        CpuId::from_entries(&[
            entry(0, 0, 0x1f, VENDOR_INTEL_EBX, 0x6c65_746e, 0x4965_6e69),
            entry(1, 0, 0x806f8, 0xff00_0800, 0x7ffa_3203, 0x0f8b_fbff),
            entry(4, 0, 0x0000_0121, 0, 0, 0), // L1d
            entry(4, 3, 0x0000_0163, 0, 0, 0), // L3
            entry(4, 4, 0, 0, 0, 0),           // end
            entry(0xa, 0, 0x0804_0102, 1, 2, 3),
            entry(0xb, 0, 1, 2, 0x100, 7),
            entry(0xb, 1, 5, 32, 0x201, 7),
            entry(0xb, 2, 0, 0, 2, 7),
        ])
        .unwrap()
    }

    fn amd() -> CpuId {
        CpuId::from_entries(&[
            entry(0, 0, 0x10, VENDOR_AMD_EBX, 0x444d_4163, 0x6974_6e65),
            entry(1, 0, 0x00a0_0f11, 0x0000_0800, 0x7ed8_320b, 0x178b_fbff),
            entry(0x8000_0008, 0, 0x3030, 0, 0x0000_703f, 0),
            entry(0x8000_001e, 0, 9, 0x105, 0x303, 0),
        ])
        .unwrap()
    }

    #[test]
    fn every_vcpu_gets_its_own_apic_id_and_the_vcpu_count() {
        for index in 0..4u8 {
            let mut cpuid = intel();
            adjust_for_vcpu(&mut cpuid, VcpuTopology { index, count: 4 });
            let leaf1 = find(&cpuid, 1, 0);
            assert_eq!(leaf1.ebx >> 24, u32::from(index));
            assert_eq!((leaf1.ebx >> 16) & 0xff, 4);
            assert_eq!(leaf1.ebx & 0xffff, 0x0800, "CLFLUSH size kept");
            assert_ne!(leaf1.ecx & FEATURES_ECX_HYPERVISOR, 0);
            assert_ne!(leaf1.edx & FEATURES_EDX_HTT, 0);
            for sub in 0..3 {
                assert_eq!(find(&cpuid, 0xb, sub).edx, u32::from(index));
            }
        }
    }

    #[test]
    fn single_vcpu_has_no_htt() {
        let mut cpuid = intel();
        adjust_for_vcpu(&mut cpuid, VcpuTopology { index: 0, count: 1 });
        assert_eq!(find(&cpuid, 1, 0).edx & FEATURES_EDX_HTT, 0);
        assert_eq!(find(&cpuid, 0xb, 1).eax, 0);
        assert_eq!(find(&cpuid, 0xb, 1).ebx, 1);
    }

    #[test]
    fn extended_topology_describes_single_threaded_cores() {
        let mut cpuid = intel();
        adjust_for_vcpu(&mut cpuid, VcpuTopology { index: 2, count: 5 });
        let smt = find(&cpuid, 0xb, 0);
        assert_eq!((smt.eax, smt.ebx, smt.ecx), (0, 1, 0x100));
        let core = find(&cpuid, 0xb, 1);
        assert_eq!((core.eax, core.ebx, core.ecx), (3, 5, 0x201));
        let end = find(&cpuid, 0xb, 2);
        assert_eq!((end.eax, end.ebx, end.ecx & 0xff00), (0, 0, 0));
    }

    #[test]
    fn intel_cache_leaf_counts_cores_and_sharing() {
        let mut cpuid = intel();
        adjust_for_vcpu(&mut cpuid, VcpuTopology { index: 0, count: 4 });
        let l1 = find(&cpuid, 4, 0);
        assert_eq!(
            (l1.eax >> 26, (l1.eax >> 14) & 0xfff, l1.eax & 0x3fff),
            (3, 0, 0x121)
        );
        let l3 = find(&cpuid, 4, 3);
        assert_eq!((l3.eax >> 26, (l3.eax >> 14) & 0xfff), (3, 3));
        assert_eq!(find(&cpuid, 4, 4).eax, 0, "terminator untouched");
    }

    #[test]
    fn performance_monitoring_is_hidden() {
        let mut cpuid = intel();
        adjust_for_vcpu(&mut cpuid, VcpuTopology { index: 0, count: 1 });
        let pmu = find(&cpuid, 0xa, 0);
        assert_eq!((pmu.eax, pmu.ebx, pmu.ecx, pmu.edx), (0, 0, 0, 0));
    }

    #[test]
    fn amd_core_count_and_extended_apic_id() {
        let mut cpuid = amd();
        assert_eq!(vendor(&cpuid), CpuVendor::Amd);
        adjust_for_vcpu(&mut cpuid, VcpuTopology { index: 3, count: 4 });
        let sizes = find(&cpuid, 0x8000_0008, 0);
        assert_eq!(sizes.ecx & 0xff, 3);
        assert_eq!((sizes.ecx >> 12) & 0xf, 2);
        let ext = find(&cpuid, 0x8000_001e, 0);
        assert_eq!((ext.eax, ext.ebx, ext.ecx), (3, 3, 0));
        assert_eq!(find(&cpuid, 1, 0).ebx >> 24, 3);
    }

    #[test]
    fn id_bits_rounds_up_to_a_power_of_two() {
        assert_eq!(
            [1, 2, 3, 4, 5, 8, 9, 255].map(id_bits),
            [0, 1, 2, 2, 3, 3, 4, 8]
        );
    }
}
