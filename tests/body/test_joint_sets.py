import pytest
import torch

from body import joint_sets

EXPECTED_SIZES = {
    "smpl_24": 24, "spin_24": 24, "h36m_17": 17, "lsp_14": 14, "coco_17": 17,
    "openpose_18": 18, "openpose_25": 25, "mpii_16": 16, "bodynet_16": 16, "panoptic_19": 19,
    "panoptic_15": 15, "jta_22": 22, "loco_14": 14, "mupots_17": 17,
}  # fmt: skip


def test_every_set_has_its_size_and_known_unique_entries():
    assert set(joint_sets.JOINT_SETS) == set(EXPECTED_SIZES)
    for name, size in EXPECTED_SIZES.items():
        names = joint_sets.joint_names(name)
        assert len(names) == size, name
        assert len(set(names)) == size, f"{name} repeats an entry"
        assert set(names) <= set(joint_sets.CANONICAL_NAMES)


def test_canonical_names_are_unique_and_every_entry_has_a_source():
    names = joint_sets.CANONICAL_NAMES
    assert len(set(names)) == len(names)
    for name in names:
        joint_sets.keypoint_source(name)
    with pytest.raises(KeyError, match="unknown keypoint"):
        joint_sets.keypoint_source("left_antenna")


def test_spin_and_loco_selectors_match_their_published_index_lists():
    spin = joint_sets.joint_names("spin_24")
    assert spin[:14] == joint_sets.joint_names("lsp_14")  # J24_TO_J14 = first 14
    jta = joint_sets.joint_names("jta_22")
    loco_types = [0, 2, 4, 5, 6, 8, 9, 10, 16, 17, 18, 19, 20, 21]  # LoCO NAMES_14
    assert joint_sets.joint_names("loco_14") == tuple(jta[i] for i in loco_types)


def test_h36m_to_lsp14_is_hmr_spin_selector():
    # metrics.md: H36M_TO_J14 = [6,5,4,1,2,3,16,15,14,11,12,13,8,10]
    expected = [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]
    assert joint_sets.evaluation_indices("h36m_17", "lsp_14") == expected


def test_smpl_flip_permutation_is_spins():
    expected = [
        0,
        2,
        1,
        3,
        5,
        4,
        6,
        8,
        7,
        9,
        11,
        10,
        12,
        14,
        13,
        15,
        17,
        16,
        19,
        18,
        21,
        20,
        23,
        22,
    ]
    assert joint_sets.flip_permutation("smpl_24") == expected
    assert joint_sets.SMPL_FLIP_PERMUTATION == expected


@pytest.mark.parametrize("name", sorted(EXPECTED_SIZES))
def test_flip_permutations_are_involutions_that_swap_sides(name):
    perm = joint_sets.flip_permutation(name)
    names = joint_sets.joint_names(name)
    assert [perm[p] for p in perm] == list(range(len(perm)))
    for i, p in enumerate(perm):
        if "left" in names[i]:
            assert names[p] == names[i].replace("left", "right")
        elif "right" not in names[i]:
            assert p == i


def test_flip_smpl_pose_swaps_joints_and_negates_y_z():
    pose = torch.randn(3, 72, generator=torch.Generator().manual_seed(0))
    flipped = joint_sets.flip_smpl_pose(pose)
    per_joint = pose.reshape(3, 24, 3)
    flipped_joint = flipped.reshape(3, 24, 3)
    left_hip, right_hip = 1, 2
    assert torch.equal(
        flipped_joint[:, left_hip], per_joint[:, right_hip] * torch.tensor([1, -1, -1])
    )
    assert torch.equal(flipped_joint[:, 0], per_joint[:, 0] * torch.tensor([1, -1, -1]))
    assert torch.equal(joint_sets.flip_smpl_pose(flipped), pose)


def test_convert_moves_shared_joints_and_flags_the_rest():
    coco = torch.arange(17 * 3, dtype=torch.float32).reshape(1, 17, 3)
    op18, available = joint_sets.convert(coco, "coco_17", "openpose_18")
    names18 = joint_sets.joint_names("openpose_18")
    names17 = joint_sets.joint_names("coco_17")
    for i, name in enumerate(names18):
        if name in names17:
            assert available[i]
            assert torch.equal(op18[0, i], coco[0, names17.index(name)])
        else:  # OpenPose neck and SMPL hips have no COCO counterpart: zeros, unavailable
            assert not available[i]
            assert torch.equal(op18[0, i], torch.zeros(3))
    assert not available[names18.index("neck")]


def test_canonical_round_trip():
    h36m = torch.randn(2, 17, 3, generator=torch.Generator().manual_seed(1))
    canonical, available = joint_sets.to_canonical(h36m, "h36m_17")
    assert int(available.sum()) == 17
    assert torch.equal(joint_sets.from_canonical(canonical, "h36m_17"), h36m)


def test_mixture_rows_are_convex_combinations():
    matrix = joint_sets.mixture_matrix()
    assert matrix.shape == (len(joint_sets.CANONICAL_NAMES), len(joint_sets.BASE_NAMES))
    assert (matrix >= 0).all()
    assert abs(matrix.sum(axis=1) - 1).max() < 1e-12
    for name in joint_sets.MIXTURES:
        assert name in joint_sets.APPROXIMATIONS, f"{name} is an undocumented approximation"


def test_unknown_set_names_the_known_ones():
    with pytest.raises(KeyError, match="h36m_17"):
        joint_sets.joint_names("h36m_32")
