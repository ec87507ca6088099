"""RFC 9497 OPRF (mode 0x00, ristretto255-SHA512): the RFC's own vectors first, then input validation.

Every expected value in the vector tests is typed in from the RFC text (cited at each constant), never
produced by the code under test.
"""

import pytest

from nextauth_core import oprf
from nextauth_core.oprf import OPRFError

# --- RFC 9497, Appendix A.1.1 "ristretto255-SHA512, OPRF Mode" -------------------------------------
# Seed, KeyInfo and skSm are the key material listed at the top of Appendix A.1.1; the two dicts are
# A.1.1.1 "Test Vector 1, Batch Size 1" and A.1.1.2 "Test Vector 2, Batch Size 1".

RFC9497_A11_SEED = bytes.fromhex("a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3")
RFC9497_A11_KEY_INFO = bytes.fromhex("74657374206b6579")  # "test key"
RFC9497_A11_SKSM = bytes.fromhex("5ebcea5ee37023ccb9fc2d2019f9d7737be85591ae8652ffa9ef0f4d37063b0e")

RFC9497_A11_VECTORS = [
    {  # RFC 9497 A.1.1.1, Test Vector 1, Batch Size 1
        "Input": "00",
        "Blind": "64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706",
        "BlindedElement": "609a0ae68c15a3cf6903766461307e5c8bb2f95e7e6550e1ffa2dc99e412803c",
        "EvaluationElement": "7ec6578ae5120958eb2db1745758ff379e77cb64fe77b0b2d8cc917ea0869c7e",
        "Output": (
            "527759c3d9366f277d8c6020418d96bb393ba2afb20ff90df23fb7708264e2f3"
            "ab9135e3bd69955851de4b1f9fe8a0973396719b7912ba9ee8aa7d0b5e24bcf6"
        ),
    },
    {  # RFC 9497 A.1.1.2, Test Vector 2, Batch Size 1
        "Input": "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
        "Blind": "64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706",
        "BlindedElement": "da27ef466870f5f15296299850aa088629945a17d1f5b7f5ff043f76b3c06418",
        "EvaluationElement": "b4cbf5a4f1eeda5a63ce7b77c7d23f461db3fcab0dd28e4e17cecb5c90d02c25",
        "Output": (
            "f4a74c9c592497375e796aa837e907b1a045d34306a749db9f34221f7e750cb4"
            "f2a6413a6bf6fa5e19ba6348eb673934a722a7ede2e7621306d18951e7cf2c73"
        ),
    },
]

# --- RFC 9380, Appendix K.3 "expand_message_xmd(SHA-512)" -------------------------------------------
# DST = "QUUX-V01-CS02-with-expander-SHA512-256", hash = SHA512, k = 256. All ten vectors of K.3:
# msg, len_in_bytes, uniform_bytes.

RFC9380_K3_DST = b"QUUX-V01-CS02-with-expander-SHA512-256"
_Q128 = "q128_" + "q" * 128
_A512 = "a512_" + "a" * 512

RFC9380_K3_VECTORS = [
    ("", 0x20, "6b9a7312411d92f921c6f68ca0b6380730a1a4d982c507211a90964c394179ba"),
    ("abc", 0x20, "0da749f12fbe5483eb066a5f595055679b976e93abe9be6f0f6318bce7aca8dc"),
    ("abcdef0123456789", 0x20, "087e45a86e2939ee8b91100af1583c4938e0f5fc6c9db4b107b83346bc967f58"),
    (_Q128, 0x20, "7336234ee9983902440f6bc35b348352013becd88938d2afec44311caf8356b3"),
    (_A512, 0x20, "57b5f7e766d5be68a6bfe1768e3c2b7f1228b3e4b3134956dd73a59b954c66f4"),
    (
        "",
        0x80,
        "41b037d1734a5f8df225dd8c7de38f851efdb45c372887be655212d07251b921"
        "b052b62eaed99b46f72f2ef4cc96bfaf254ebbbec091e1a3b9e4fb5e5b619d2e"
        "0c5414800a1d882b62bb5cd1778f098b8eb6cb399d5d9d18f5d5842cf5d13d7e"
        "b00a7cff859b605da678b318bd0e65ebff70bec88c753b159a805d2c89c55961",
    ),
    (
        "abc",
        0x80,
        "7f1dddd13c08b543f2e2037b14cefb255b44c83cc397c1786d975653e36a6b11"
        "bdd7732d8b38adb4a0edc26a0cef4bb45217135456e58fbca1703cd6032cb134"
        "7ee720b87972d63fbf232587043ed2901bce7f22610c0419751c065922b48843"
        "1851041310ad659e4b23520e1772ab29dcdeb2002222a363f0c2b1c972b3efe1",
    ),
    (
        "abcdef0123456789",
        0x80,
        "3f721f208e6199fe903545abc26c837ce59ac6fa45733f1baaf0222f8b7acb04"
        "24814fcb5eecf6c1d38f06e9d0a6ccfbf85ae612ab8735dfdf9ce84c372a77c8"
        "f9e1c1e952c3a61b7567dd0693016af51d2745822663d0c2367e3f4f0bed827f"
        "eecc2aaf98c949b5ed0d35c3f1023d64ad1407924288d366ea159f46287e61ac",
    ),
    (
        _Q128,
        0x80,
        "b799b045a58c8d2b4334cf54b78260b45eec544f9f2fb5bd12fb603eaee70db7"
        "317bf807c406e26373922b7b8920fa29142703dd52bdf280084fb7ef69da78af"
        "df80b3586395b433dc66cde048a258e476a561e9deba7060af40adf30c64249c"
        "a7ddea79806ee5beb9a1422949471d267b21bc88e688e4014087a0b592b695ed",
    ),
    (
        _A512,
        0x80,
        "05b0bfef265dcee87654372777b7c44177e2ae4c13a27f103340d9cd11c86cb2"
        "426ffcad5bd964080c2aee97f03be1ca18e30a1f14e27bc11ebbd650f305269c"
        "c9fb1db08bf90bfc79b42a952b46daf810359e7bc36452684784a64952c343c5"
        "2e5124cd1f71d474d5197fefc571a92929c9084ffe1112cf5eea5192ebff330b",
    ),
]

# --- RFC 9496, Appendix A.2 "Invalid Encodings" (ristretto255) ----------------------------------------
# Encodings every decoder must refuse. Copied from the appendix as reproduced, identically, by several
# independent ristretto255 implementations' test suites (the RFC text itself was not at hand).
RFC9496_A2_INVALID = [
    # Non-canonical field encodings.
    "00ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "f3ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    # Negative field elements.
    "0100000000000000000000000000000000000000000000000000000000000000",
    "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "ed57ffd8c914fb201471d1c3d245ce3c746fcbe63a3679d51b6a516ebebe0e20",
    "c34c4e1826e5d403b78e246e88aa051c36ccf0aafebffe137d148a2bf9104562",
    "c940e5a4404157cfb1628b108db051a8d439e1a421394ec4ebccb9ec92a8ac78",
    "47cfc5497c53dc8e61c91d17fd626ffb1c49e2bca94eed052281b510b1117a24",
    "f1c6165d33367351b0da8f6e4511010c68174a03b6581212c71c0e1d026c3c72",
    "87260f7a2f12495118360f02c26a470f450dadf34a413d21042b43b9d93e1309",
    # Non-square x^2.
    "26948d35ca62e643e26a83177332e6b6afeb9d08e4268b650f1f5bbd8d81d371",
    "4eac077a713c57b4f4397629a4145982c661f48044dd3f96427d40b147d9742f",
    "de6a7b00deadc788eb6b6c8d20c0ae96c2f2019078fa604fee5b87d6e989ad7b",
    "bcab477be20861e01e4a0e295284146a510150d9817763caf1a6f4b422d67042",
    "2a292df7e32cababbd9de088d1d1abec9fc0440f637ed2fba145094dc14bea08",
    "f4a9e534fc0d216c44b218fa0c42d99635a0127ee2e53c712f70609649fdff22",
    "8268436f8c4126196cf64b3c7ddbda90746a378625f9813dd9b8457077256731",
    "2810e5cbc2cc4d4eece54f61c6f69758e289aa7ab440b3cbeaa21995c2f4232b",
    # Negative x * y value.
    "3eb858e78f5a7254d8c9731174a94f76755fd3941c0ac93735c07ba14579630e",
    "a45fdc55c76448c049a1ab33f17023edfb2be3581e9c7aade8a6125215e04220",
    "d483fe813c6ba647ebbfd3ec41adca1c6130c2beeee9d9bf065c8d151c5f396e",
    "8a2e1d30050198c65a54483123960ccc38aef6848e1ec8f5f780e8523769ba32",
    "32888462f8b486c68ad7dd9610be5192bbeaf3b443951ac1a8118419d9fa097b",
    "227142501b9d4355ccba290404bde41575b037693cef1f438c47f8fbf35d1165",
    "5c37cc491da847cfeb9281d407efc41e15144c876e0170b499a96a22ed31e01e",
    "445425117cb8c90edcbc7c1cc0e74f747f2c1efa5630a967c64f287792a48a4b",
    # s = -1, which causes y = 0.
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
]

# The ristretto255 group order L = 2^252 + 27742317777372353535851937790883648493 (RFC 9496 §4.1).
GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493
IDENTITY = bytes(32)


def _le(value: int) -> bytes:
    return value.to_bytes(32, "little")


# --- Vectors --------------------------------------------------------------------------------------


def test_context_string_is_the_rfcs() -> None:
    assert oprf.CONTEXT_STRING == b"OPRFV1-\x00-ristretto255-SHA512"


def test_derive_key_pair_gives_rfc9497_a11_sksm() -> None:
    secret_key, public_key = oprf.derive_key_pair(RFC9497_A11_SEED, RFC9497_A11_KEY_INFO)
    assert secret_key == RFC9497_A11_SKSM
    assert len(public_key) == 32
    assert public_key != IDENTITY


@pytest.mark.parametrize("vector", RFC9497_A11_VECTORS, ids=["A.1.1.1", "A.1.1.2"])
def test_rfc9497_a11_oprf_vector(vector: dict[str, str]) -> None:
    private_input = bytes.fromhex(vector["Input"])
    fixed_blind = bytes.fromhex(vector["Blind"])

    blind, blinded_element = oprf.blind(private_input, fixed_blind)
    assert blind == fixed_blind
    assert blinded_element.hex() == vector["BlindedElement"]

    evaluated_element = oprf.blind_evaluate(RFC9497_A11_SKSM, blinded_element)
    assert evaluated_element.hex() == vector["EvaluationElement"]

    output = oprf.finalize(private_input, blind, evaluated_element)
    assert output.hex() == vector["Output"]
    assert len(output) == oprf.OUTPUT_LENGTH

    assert oprf.evaluate(RFC9497_A11_SKSM, private_input).hex() == vector["Output"]


@pytest.mark.parametrize(("msg", "len_in_bytes", "uniform_bytes"), RFC9380_K3_VECTORS)
def test_rfc9380_k3_expand_message_xmd_sha512(msg: str, len_in_bytes: int, uniform_bytes: str) -> None:
    assert oprf.expand_message_xmd(msg.encode("ascii"), RFC9380_K3_DST, len_in_bytes).hex() == uniform_bytes


# --- The protocol round trip ----------------------------------------------------------------------


def test_round_trip_with_random_key_and_blinds() -> None:
    key = oprf.generate_key()
    blind_1, blinded_1 = oprf.blind(b"some input")
    blind_2, blinded_2 = oprf.blind(b"some input")
    # Fresh blinds: the server sees two unrelated elements for the same input...
    assert blind_1 != blind_2
    assert blinded_1 != blinded_2
    # ...and the client still gets one PRF value, the one Evaluate gives.
    output_1 = oprf.finalize(b"some input", blind_1, oprf.blind_evaluate(key, blinded_1))
    output_2 = oprf.finalize(b"some input", blind_2, oprf.blind_evaluate(key, blinded_2))
    assert output_1 == output_2 == oprf.evaluate(key, b"some input")


def test_output_depends_on_key_and_input() -> None:
    key_1, key_2 = oprf.generate_key(), oprf.generate_key()
    assert oprf.evaluate(key_1, b"a") != oprf.evaluate(key_2, b"a")
    assert oprf.evaluate(key_1, b"a") != oprf.evaluate(key_1, b"b")


def test_generate_key_is_a_canonical_nonzero_scalar() -> None:
    for _ in range(20):
        key = oprf.generate_key()
        assert len(key) == 32
        assert 0 < int.from_bytes(key, "little") < GROUP_ORDER


def test_empty_and_maximum_length_inputs_are_accepted() -> None:
    key = oprf.generate_key()
    for private_input in (b"", bytes(oprf.MAX_INPUT_LENGTH)):
        blind, blinded = oprf.blind(private_input)
        output = oprf.finalize(private_input, blind, oprf.blind_evaluate(key, blinded))
        assert output == oprf.evaluate(key, private_input)


def test_bytes_like_inputs_are_accepted() -> None:
    key = bytearray(RFC9497_A11_SKSM)
    fixed_blind = bytearray(bytes.fromhex(RFC9497_A11_VECTORS[0]["Blind"]))
    _, blinded = oprf.blind(memoryview(b"\x00"), fixed_blind)
    assert blinded.hex() == RFC9497_A11_VECTORS[0]["BlindedElement"]
    assert oprf.blind_evaluate(key, bytearray(blinded)).hex() == RFC9497_A11_VECTORS[0]["EvaluationElement"]


# --- Element validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", RFC9496_A2_INVALID)
def test_blind_evaluate_rejects_rfc9496_invalid_encodings(encoding: str) -> None:
    with pytest.raises(OPRFError, match="not a valid canonical ristretto255 encoding"):
        oprf.blind_evaluate(RFC9497_A11_SKSM, bytes.fromhex(encoding))


@pytest.mark.parametrize("encoding", RFC9496_A2_INVALID)
def test_finalize_rejects_rfc9496_invalid_encodings(encoding: str) -> None:
    blind = bytes.fromhex(RFC9497_A11_VECTORS[0]["Blind"])
    with pytest.raises(OPRFError, match="not a valid canonical ristretto255 encoding"):
        oprf.finalize(b"\x00", blind, bytes.fromhex(encoding))


def test_identity_element_is_rejected() -> None:
    blind = bytes.fromhex(RFC9497_A11_VECTORS[0]["Blind"])
    with pytest.raises(OPRFError, match="identity"):
        oprf.blind_evaluate(RFC9497_A11_SKSM, IDENTITY)
    with pytest.raises(OPRFError, match="identity"):
        oprf.finalize(b"\x00", blind, IDENTITY)


@pytest.mark.parametrize("length", [0, 1, 31, 33, 64])
def test_element_of_wrong_length_is_rejected(length: int) -> None:
    blind = bytes.fromhex(RFC9497_A11_VECTORS[0]["Blind"])
    with pytest.raises(OPRFError, match="must be 32 bytes"):
        oprf.blind_evaluate(RFC9497_A11_SKSM, b"\x02" * length)
    with pytest.raises(OPRFError, match="must be 32 bytes"):
        oprf.finalize(b"\x00", blind, b"\x02" * length)


@pytest.mark.parametrize("value", [None, "00" * 32, 12345, [0] * 32])
def test_element_of_wrong_type_is_rejected(value: object) -> None:
    with pytest.raises(OPRFError, match="must be bytes"):
        oprf.blind_evaluate(RFC9497_A11_SKSM, value)  # type: ignore[arg-type]


def test_oprf_error_is_a_value_error() -> None:
    assert issubclass(OPRFError, ValueError)


# --- Scalar validation ----------------------------------------------------------------------------

NON_CANONICAL_SCALARS = [
    _le(GROUP_ORDER),  # L itself
    _le(GROUP_ORDER + 1),
    _le(2**255 - 1),
    b"\xff" * 32,  # top bits set
]


@pytest.mark.parametrize("scalar", NON_CANONICAL_SCALARS, ids=["L", "L+1", "2^255-1", "all-ones"])
def test_non_canonical_scalars_are_rejected(scalar: bytes) -> None:
    blinded = bytes.fromhex(RFC9497_A11_VECTORS[0]["BlindedElement"])
    evaluated = bytes.fromhex(RFC9497_A11_VECTORS[0]["EvaluationElement"])
    with pytest.raises(OPRFError, match="server_key is not a canonical ristretto255 scalar"):
        oprf.blind_evaluate(scalar, blinded)
    with pytest.raises(OPRFError, match="server_key is not a canonical ristretto255 scalar"):
        oprf.evaluate(scalar, b"\x00")
    with pytest.raises(OPRFError, match="blind is not a canonical ristretto255 scalar"):
        oprf.blind(b"\x00", scalar)
    with pytest.raises(OPRFError, match="blind is not a canonical ristretto255 scalar"):
        oprf.finalize(b"\x00", scalar, evaluated)


def test_largest_canonical_scalar_is_accepted() -> None:
    _, blinded = oprf.blind(b"\x00", _le(GROUP_ORDER - 1))
    assert len(oprf.blind_evaluate(_le(GROUP_ORDER - 1), blinded)) == 32


def test_zero_scalars_are_rejected() -> None:
    blinded = bytes.fromhex(RFC9497_A11_VECTORS[0]["BlindedElement"])
    evaluated = bytes.fromhex(RFC9497_A11_VECTORS[0]["EvaluationElement"])
    with pytest.raises(OPRFError, match="server_key must not be zero"):
        oprf.blind_evaluate(bytes(32), blinded)
    with pytest.raises(OPRFError, match="blind must not be zero"):
        oprf.blind(b"\x00", bytes(32))
    with pytest.raises(OPRFError, match="blind must not be zero"):
        oprf.finalize(b"\x00", bytes(32), evaluated)


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_scalar_of_wrong_length_is_rejected(length: int) -> None:
    blinded = bytes.fromhex(RFC9497_A11_VECTORS[0]["BlindedElement"])
    with pytest.raises(OPRFError, match="server_key must be 32 bytes"):
        oprf.blind_evaluate(b"\x01" * length, blinded)
    with pytest.raises(OPRFError, match="blind must be 32 bytes"):
        oprf.blind(b"\x00", b"\x01" * length)


# --- Length limits and other inputs ---------------------------------------------------------------


def test_input_longer_than_two_byte_length_prefix_is_rejected() -> None:
    too_long = bytes(oprf.MAX_INPUT_LENGTH + 1)
    key = oprf.generate_key()
    blind, blinded = oprf.blind(b"x")
    evaluated = oprf.blind_evaluate(key, blinded)
    with pytest.raises(OPRFError, match="private_input must be at most 65535 bytes"):
        oprf.blind(too_long)
    with pytest.raises(OPRFError, match="private_input must be at most 65535 bytes"):
        oprf.finalize(too_long, blind, evaluated)
    with pytest.raises(OPRFError, match="private_input must be at most 65535 bytes"):
        oprf.evaluate(key, too_long)


def test_private_input_must_be_bytes() -> None:
    with pytest.raises(OPRFError, match="private_input must be bytes"):
        oprf.blind("1234")  # type: ignore[arg-type]


def test_derive_key_pair_validates_its_inputs() -> None:
    with pytest.raises(OPRFError, match="seed must be 32 bytes"):
        oprf.derive_key_pair(RFC9497_A11_SEED[:31], RFC9497_A11_KEY_INFO)
    with pytest.raises(OPRFError, match="info must be at most 65535 bytes"):
        oprf.derive_key_pair(RFC9497_A11_SEED, bytes(oprf.MAX_INPUT_LENGTH + 1))
    # Info is bound into the key.
    assert oprf.derive_key_pair(RFC9497_A11_SEED, b"other")[0] != RFC9497_A11_SKSM


def test_expand_message_xmd_limits() -> None:
    # RFC 9380 §5.3.1: abort if ell > 255 (ell = ceil(len_in_bytes / 64)) or len(DST) > 255.
    assert len(oprf.expand_message_xmd(b"", RFC9380_K3_DST, 255 * 64)) == 255 * 64
    with pytest.raises(OPRFError, match="too large"):
        oprf.expand_message_xmd(b"", RFC9380_K3_DST, 255 * 64 + 1)
    with pytest.raises(OPRFError, match="dst must be at most 255 bytes"):
        oprf.expand_message_xmd(b"", b"d" * 256, 32)
    with pytest.raises(OPRFError, match="dst must not be empty"):
        oprf.expand_message_xmd(b"", b"", 32)
    with pytest.raises(OPRFError, match="positive integer"):
        oprf.expand_message_xmd(b"", RFC9380_K3_DST, 0)


def test_error_messages_do_not_contain_the_rejected_value() -> None:
    secret_scalar = b"\xfe" * 32  # non-canonical, so rejected
    with pytest.raises(OPRFError) as raised:
        oprf.blind(b"my secret pin", secret_scalar)
    message = str(raised.value)
    assert secret_scalar.hex() not in message
    assert "fe" * 4 not in message
    assert "my secret pin" not in message
