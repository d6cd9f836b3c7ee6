local function members(token, count)
    local list = {token}
    for i = 2, count do
        list[i] = token .. "#" .. i
    end
    return list
end
