-- Wireshark dissector for lanchat (docs/protocol.md §1, §2, §5).
--
-- TCP: every message is a 4-byte big-endian length, then that many bytes of
-- UTF-8 JSON; frames are reassembled across TCP segments, and one segment
-- may hold many frames ("sticky packets"). UDP: one datagram is one JSON
-- message, with no length. Each message shows its top-level `type`, `seq`,
-- `nick`, `room`, `from`, `to` and `text`; the Info column lists the types.
--
-- Install: copy this file into Wireshark's personal plugins folder
-- (Help > About Wireshark > Folders > Personal Lua Plugins; on Linux
-- ~/.local/lib/wireshark/plugins/), or load it for one run:
--   wireshark -X lua_script:tools/wireshark/lanchat.lua
--   tshark -X lua_script:tools/wireshark/lanchat.lua -r capture.pcap -Y lanchat
-- The port (9009, chatsrv's default) is a preference: Edit > Preferences >
-- Protocols > LANCHAT; or Decode As... on any port.

local lanchat = Proto("lanchat", "lanchat chat protocol")

local f = {
    length = ProtoField.uint32("lanchat.length", "Frame length", base.DEC),
    json = ProtoField.string("lanchat.json", "JSON"),
    type = ProtoField.string("lanchat.type", "Type"),
    seq = ProtoField.uint64("lanchat.seq", "Seq", base.DEC),
    nick = ProtoField.string("lanchat.nick", "Nick"),
    room = ProtoField.string("lanchat.room", "Room"),
    from = ProtoField.string("lanchat.from", "From"),
    to = ProtoField.string("lanchat.to", "To"),
    text = ProtoField.string("lanchat.text", "Text"),
    code = ProtoField.string("lanchat.code", "Error code"),
}
lanchat.fields = { f.length, f.json, f.type, f.seq, f.nick, f.room, f.from, f.to, f.text, f.code }

local bad_length = ProtoExpert.new("lanchat.bad_length", "Length header larger than any lanchat frame",
    expert.group.MALFORMED, expert.severity.ERROR)
local bad_json = ProtoExpert.new("lanchat.bad_json", "Not a JSON object", expert.group.MALFORMED, expert.severity.WARN)
lanchat.experts = { bad_length, bad_json }

lanchat.prefs.port = Pref.uint("Port", 9009, "TCP and UDP port of chatsrv")
lanchat.prefs.max_frame = Pref.uint("Largest frame", 16777216, "Length headers above this are shown as malformed")

-- A small reader for the top level of one JSON object: string, number and
-- literal values are returned, nested objects and arrays are skipped (a
-- welcome's history holds messages with their own "type").
local function skip_space(s, i)
    return s:find("[^ \t\r\n]", i) or #s + 1
end

local function read_string(s, i) -- s:sub(i, i) == '"'; returns the text and the index after the closing quote
    local out, j = {}, i + 1
    while j <= #s do
        local c = s:sub(j, j)
        if c == '"' then
            return table.concat(out), j + 1
        elseif c == "\\" then
            local e = s:sub(j + 1, j + 1)
            local simple = { n = "\n", t = "\t", r = "\r", b = "\b", f = "\f" }
            if e == "u" then
                out[#out + 1] = "\\u" .. s:sub(j + 2, j + 5) -- shown as written
                j = j + 6
            else
                out[#out + 1] = simple[e] or e
                j = j + 2
            end
        else
            out[#out + 1] = c
            j = j + 1
        end
    end
    return nil, j
end

local function skip_value(s, i) -- index after the value starting at i
    local c = s:sub(i, i)
    if c == '"' then
        local _, after = read_string(s, i)
        return after
    elseif c == "{" or c == "[" then
        local depth, j = 0, i
        while j <= #s do
            local d = s:sub(j, j)
            if d == '"' then
                local _, after = read_string(s, j)
                j = after
            else
                if d == "{" or d == "[" then depth = depth + 1 end
                if d == "}" or d == "]" then
                    depth = depth - 1
                    if depth == 0 then return j + 1 end
                end
                j = j + 1
            end
        end
        return j
    end
    local stop = s:find("[,}%] \t\r\n]", i) or #s + 1
    return stop
end

local function top_level(s)
    local fields = {}
    local i = skip_space(s, 1)
    if s:sub(i, i) ~= "{" then return nil end
    i = skip_space(s, i + 1)
    while i <= #s and s:sub(i, i) == '"' do
        local key, after = read_string(s, i)
        if key == nil then return fields end
        i = skip_space(s, after)
        if s:sub(i, i) ~= ":" then return fields end
        i = skip_space(s, i + 1)
        local c = s:sub(i, i)
        if c == '"' then
            local value, next_i = read_string(s, i)
            fields[key] = value
            i = next_i
        else
            local next_i = skip_value(s, i)
            if c ~= "{" and c ~= "[" then fields[key] = s:sub(i, next_i - 1) end
            i = next_i
        end
        i = skip_space(s, i)
        if s:sub(i, i) ~= "," then break end
        i = skip_space(s, i + 1)
    end
    return fields
end

-- One JSON message (the payload of a frame or a whole datagram) into `tree`; returns its type.
local function add_message(range, tree, pinfo)
    local text = range:string(ENC_UTF_8)
    local fields = top_level(text)
    local kind = fields and fields.type or "?"
    local item = tree:add(f.json, range, text)
    if fields == nil then
        item:add_proto_expert_info(bad_json)
        return "not JSON"
    end
    tree:add(f.type, range, kind)
    if fields.seq and tonumber(fields.seq) then tree:add(f.seq, range, UInt64(tonumber(fields.seq))) end
    for _, name in ipairs({ "nick", "room", "from", "to", "text", "code" }) do
        if fields[name] then tree:add(f[name], range, fields[name]) end
    end
    return kind
end

local function set_info(pinfo, kinds)
    pinfo.cols.protocol = "LANCHAT"
    pinfo.cols.info = "lanchat " .. table.concat(kinds, ", ")
end

local function dissect_tcp(buffer, pinfo, tree)
    local offset, total, kinds = 0, buffer:len(), {}
    local root = nil
    while offset < total do
        local left = total - offset
        if left < 4 then
            pinfo.desegment_offset = offset
            pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
            break
        end
        local length = buffer(offset, 4):uint()
        if length == 0 or length > lanchat.prefs.max_frame then
            root = root or tree:add(lanchat, buffer(offset))
            root:add(f.length, buffer(offset, 4)):add_proto_expert_info(bad_length)
            local swapped = buffer(offset, 4):le_uint()
            if swapped > 0 and swapped <= lanchat.prefs.max_frame then
                -- docs/protocol.md §2: big-endian; a header in native (little-endian) order is a common mistake.
                kinds[#kinds + 1] = "bad length " .. length .. " (little-endian it is " .. swapped ..
                    ": struct.pack('i') instead of '!I'?)"
            else
                kinds[#kinds + 1] = "bad length " .. length
            end
            break
        end
        if left < 4 + length then
            pinfo.desegment_offset = offset
            pinfo.desegment_len = 4 + length - left
            break
        end
        local frame = tree:add(lanchat, buffer(offset, 4 + length))
        frame:add(f.length, buffer(offset, 4))
        kinds[#kinds + 1] = add_message(buffer(offset + 4, length), frame, pinfo)
        offset = offset + 4 + length
    end
    if #kinds > 0 then set_info(pinfo, kinds) end
    return total
end

local function dissect_udp(buffer, pinfo, tree)
    local message = tree:add(lanchat, buffer())
    set_info(pinfo, { add_message(buffer(), message, pinfo) })
    return buffer:len()
end

function lanchat.dissector(buffer, pinfo, tree)
    if pinfo.port_type == 3 then -- PT_UDP in epan/address.h (PT_TCP is 2)
        return dissect_udp(buffer, pinfo, tree)
    end
    return dissect_tcp(buffer, pinfo, tree)
end

local registered = 0
local function register_port()
    if registered ~= 0 then
        DissectorTable.get("tcp.port"):remove(registered, lanchat)
        DissectorTable.get("udp.port"):remove(registered, lanchat)
    end
    registered = lanchat.prefs.port
    DissectorTable.get("tcp.port"):add(registered, lanchat)
    DissectorTable.get("udp.port"):add(registered, lanchat)
end
lanchat.prefs_changed = register_port
register_port()
