-- A reading converted from another unit keeps what was sent, in one shape whoever sent it
-- (telemed.device_contract.CanonicalReading.detail, docs/device-protocol.md): `original_value`
-- and `original_unit`. A nurse's readings were stored as `original: {value, unit}`; they take
-- the one shape. The pass reads every chunk once (nurse readings are a small part of them) and
-- changes nothing else of a row.
UPDATE readings
SET detail = (detail - 'original')
    || jsonb_build_object('original_value', detail -> 'original' -> 'value',
                          'original_unit', detail -> 'original' -> 'unit')
WHERE source = 'nurse' AND detail ? 'original';
